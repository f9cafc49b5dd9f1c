package remote

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// reference is rewrite done the plain way: decode into a map, set, encode.
func reference(data []byte, id, model, created json.RawMessage, dropUsage bool) (map[string]any, json.RawMessage, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil || m == nil {
		return nil, nil, false
	}
	usage := m["usage"]
	m["id"], m["model"] = id, model
	if created != nil {
		m["created"] = created
	}
	if dropUsage {
		delete(m, "usage")
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out, usage, true
}

var rewriteSeeds = []string{
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"content":" word"},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":1}}}`,
	" \r\n{ \"choices\" : [ { \"text\" : \"a\\\"}]\" } ] , \"usage\" : null , \"n\" : -1.5e3 }\t",
	`{"\u0069d":"escaped key","mo\u0064el":1,"usage":{"a":[1,{"b":"}"}]},"usage":2}`,
	`{"a":true,"b":false,"c":null,"d":0}`,
	`{}`,
	`{"model":"m","model":"n","created":5}`,
	`{"k":"\\"}`,
	`[1,2]`,
	`"string"`,
	`{"a":1`,
	`{"a":"\ud800"}`,
	"{\"a\":\"\xff\"}",
}

func FuzzRewrite(f *testing.F) {
	for _, s := range rewriteSeeds {
		f.Add([]byte(s), true, true)
	}
	id, model, created := json.RawMessage(`"chatcmpl-net"`), json.RawMessage(`"net-model"`), json.RawMessage(`1234`)
	f.Fuzz(func(t *testing.T, data []byte, dropUsage, setCreated bool) {
		c := created
		if !setCreated {
			c = nil
		}
		want, wantUsage, wantOK := reference(data, id, model, c, dropUsage)
		out, o, ok := rewrite(data, id, model, c, dropUsage)
		if ok != wantOK {
			t.Fatalf("rewrite(%q) ok = %t, the map way says %t", data, ok, wantOK)
		}
		if !ok {
			return
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("rewrite(%q) = %q, not JSON: %v", data, out, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("rewrite(%q) = %q\nthe map way: %v", data, out, want)
		}
		if !bytes.Equal(o.usage, wantUsage) {
			t.Fatalf("rewrite(%q) found usage %q, the map way %q", data, o.usage, wantUsage)
		}
	})
}

func TestRewriteKeepsOrder(t *testing.T) {
	in := `{"id":"u","object":"chat.completion.chunk","created":1,"model":"up","system_fingerprint":"fp","choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":1}}`
	out, _, _ := rewrite([]byte(in), json.RawMessage(`"n"`), json.RawMessage(`"m"`), json.RawMessage(`2`), true)
	want := `{"id":"n","model":"m","created":2,"object":"chat.completion.chunk","system_fingerprint":"fp","choices":[{"delta":{"content":"a"}}]}`
	if string(out) != want {
		t.Errorf("rewrite =\n%s\nwant\n%s", out, want)
	}
}
