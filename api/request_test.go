package api

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRequestChat(t *testing.T) {
	body := `{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}],
		"stream":true,"stream_options":{"include_usage":true},"max_completion_tokens":7,"max_tokens":9,"temperature":0.5,"top_p":0.9,"seed":3,"stop":"END","tools":[]}`
	r, err := ParseRequest(EndpointChat, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != "m" || len(r.Messages) != 2 || r.Messages[1].Content != "hi there" {
		t.Errorf("parsed %+v", r)
	}
	if r.Limit() != 7 {
		t.Errorf("Limit = %d, want max_completion_tokens 7", r.Limit())
	}
	if !r.Stream || !r.IncludeUsage() || *r.Temperature != 0.5 || *r.Seed != 3 || len(r.Stop) != 1 || r.Stop[0] != "END" {
		t.Errorf("parsed %+v", r)
	}
}

func TestParseRequestCompletion(t *testing.T) {
	r, err := ParseRequest(EndpointCompletion, []byte(`{"model":"m","prompt":["Once upon"],"max_tokens":3,"stop":["a","b"]}`))
	if err != nil {
		t.Fatal(err)
	}
	if r.Prompt != "Once upon" || r.Limit() != 3 || len(r.Stop) != 2 {
		t.Errorf("parsed %+v", r)
	}
}

func TestParseRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		endpoint, body, param, msg string
	}{
		{EndpointChat, `{"model":"m","messages":[{"role":"user","content":"x"}]`, "", "truncated"},
		{EndpointChat, `{"model":"m","messages":[{"role":"user","content":"x"}]} {}`, "", "after the JSON"},
		{EndpointChat, `{"model":"m","messages":[{"role":"user","content":"x"}],}`, "", "malformed JSON"},
		{EndpointChat, `{"model":7,"messages":[]}`, "model", `"model"`},
		{EndpointChat, `{"messages":[{"role":"user","content":"x"}]}`, "model", "required"},
		{EndpointChat, `{"model":"m","messages":[]}`, "messages", "non-empty"},
		{EndpointChat, `{"model":"m","messages":[{"role":"wizard","content":"x"}]}`, "messages[0].role", "wizard"},
		{EndpointChat, `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}`, "max_tokens", "between 1 and"},
		{EndpointChat, `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":4294967297}`, "max_tokens", "between 1 and"},
		{EndpointChat, `{"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":-1}`, "max_completion_tokens", "between 1 and"},
		{EndpointChat, `{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1e30}`, "max_tokens", "max_tokens"},
		{EndpointChat, `{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}`, "temperature", "between"},
		{EndpointChat, `{"model":"m","messages":[{"role":"user","content":"x"}],"top_p":0}`, "top_p", "top_p"},
		{EndpointChat, `{"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}`, "stop", "at most"},
		{EndpointChat, `{"model":"m","messages":[{"role":"user","content":"x"}],"n":2}`, "n", "n=1"},
		{EndpointChat, `{"model":"m","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}}`, "stream_options", "stream"},
		{EndpointChat, `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, "messages", "image_url"},
		{EndpointCompletion, `{"model":"m","prompt":["a","b"]}`, "prompt", "exactly one"},
	} {
		_, err := ParseRequest(tc.endpoint, []byte(tc.body))
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: err = %v, want *Error", tc.body, err)
			continue
		}
		if e.Status != 400 || e.Type != TypeInvalidRequest {
			t.Errorf("%s: got %d %s", tc.body, e.Status, e.Type)
		}
		if !strings.HasPrefix(e.Param, tc.param) || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: param %q message %q; want param %q and %q in message", tc.body, e.Param, e.Message, tc.param, tc.msg)
		}
	}
}

func TestErrorJSONRoundTrip(t *testing.T) {
	e := Errorf(404, TypeNotFound, "model_not_found", "the model %q does not exist", "x")
	got := ParseError(404, MarshalError(e))
	if !reflect.DeepEqual(got, e) {
		t.Errorf("round trip: %+v != %+v", got, e)
	}
	if g := ParseError(502, []byte("<html>")); g.Status != 502 || g.Type != TypeServer {
		t.Errorf("garbage body: %+v", g)
	}
}
