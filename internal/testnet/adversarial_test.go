package testnet

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine"
)

// postRaw posts body to the client's OpenAI API and returns the status and
// the error the app would see (nil on 200).
func postRaw(t *testing.T, n *Net, path, body string) (int, *api.Error, []byte) {
	t.Helper()
	resp, err := http.Post(n.BaseURL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, nil, b
	}
	return resp.StatusCode, api.ParseError(resp.StatusCode, b), b
}

// A max_tokens of 2^32+1 once wrapped to 1 in the clear header: the engine ran
// unbounded and the receipt was refused. Out-of-range limits are a 400 that
// names the parameter, and no engine runs.
func TestMaxTokensAbove32BitsRefused(t *testing.T) {
	eng := newFake("one two three four five")
	n := Start(t, Options{Engines: []engine.Engine{eng}})
	for _, param := range []string{"max_tokens", "max_completion_tokens"} {
		for _, v := range []string{"4294967297", "4294967296", "-1", "0", "99999999999"} {
			body := `{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"` + param + `":` + v + `}`
			status, e, _ := postRaw(t, n, "/chat/completions", body)
			if status != http.StatusBadRequest || e.Param != param || e.Type != api.TypeInvalidRequest {
				t.Errorf("%s=%s: status %d, error %+v; want 400 naming %s", param, v, status, e, param)
			}
		}
	}
	if r := eng.Runs(); r != 0 {
		t.Errorf("the engine ran %d times for refused requests", r)
	}
	// At the limit itself the request is served.
	if status, e, _ := postRaw(t, n, "/chat/completions", `{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`); status != http.StatusOK {
		t.Fatalf("max_tokens 2: %d %+v", status, e)
	}
	if got := eng.LastRequest().MaxTokens; got != 2 {
		t.Errorf("engine limit %d, want 2", got)
	}
}
