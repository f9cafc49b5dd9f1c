package api

import (
	"errors"
	"testing"
)

// FuzzParseRequest: any body yields a request or a 400/404 *Error, never a panic.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"max_tokens":3,"stop":["x"]}`,
		`{"model":"m","prompt":["p"],"temperature":0.5,"top_p":1,"seed":1}`,
		`{"model":`, `null`, `[]`, `{"model":"m","messages":null}`,
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, body string, chat bool) {
		endpoint := EndpointCompletion
		if chat {
			endpoint = EndpointChat
		}
		r, err := ParseRequest(endpoint, []byte(body))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Status != 400 && e.Status != 404) || e.Message == "" {
				t.Fatalf("error %v is not a 400 *Error", err)
			}
			return
		}
		if r.Model == "" || r.Limit() < 0 {
			t.Fatalf("accepted an invalid request: %+v", r)
		}
	})
}
