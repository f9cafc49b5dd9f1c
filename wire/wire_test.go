package wire

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/attest"
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
	// A worker's error carries its param and its sealed detail through.
	b, _ = json.Marshal(ErrorRecord{Error: api.Error{Status: 400, Type: "t", Param: "messages", Code: "c", Message: "m", Sealed: []byte{1, 2}}})
	if e, err := ParseErrorRecord(b); err != nil || e.Param != "messages" || !bytes.Equal(e.Sealed, []byte{1, 2}) {
		t.Errorf("round trip of %s: %+v, %v", b, e, err)
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

// TestMaxHelloSizeFitsLargestEvidence checks that a Hello carrying the
// largest evidence attest accepts still fits the proxy's read limit.
func TestMaxHelloSizeFitsLargestEvidence(t *testing.T) {
	h := Hello{Name: strings.Repeat("w", 256), Evidence: make([]byte, attest.MaxEvidenceSize), Models: []string{strings.Repeat("m", 256)}, Payout: strings.Repeat("a", 64)}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) >= MaxHelloSize {
		t.Errorf("a Hello with %d bytes of evidence is %d bytes of JSON, over MaxHelloSize %d", attest.MaxEvidenceSize, len(b), MaxHelloSize)
	}
}
