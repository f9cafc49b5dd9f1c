package wire

import (
	"testing"
)

func TestErrorRecordRoundTrip(t *testing.T) {
	b := MarshalErrorRecord(503, "service_unavailable", "busy", "worker is at capacity", true)
	e, err := ParseErrorRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != 503 || e.Code != "busy" || e.Message != "worker is at capacity" || !e.Retry {
		t.Errorf("round trip: %+v", e)
	}
}

// FuzzParseErrorRecord: error records come from workers through the proxy;
// any bytes give an error or a record with a 4xx/5xx status.
func FuzzParseErrorRecord(f *testing.F) {
	f.Add(MarshalErrorRecord(400, "invalid_request_error", "bad", "nope", false))
	f.Add([]byte(`{"status":200}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseErrorRecord(b)
		if err == nil && (e.Status < 400 || e.Status > 599) {
			t.Fatalf("status %d accepted", e.Status)
		}
	})
}
