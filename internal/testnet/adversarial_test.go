package testnet

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
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

// An engine that reported 10^9 prompt tokens for "hi" once made the stock
// client pay 500 TON. The worker signs no more than seal.MaxUsage of the
// request (it charges the bound: the answer was delivered), and the client
// pays no more.
func TestInflatedUsageClampedByWorker(t *testing.T) {
	eng := &enginetest.RogueEngine{FakeEngine: enginetest.FakeEngine{Text: "ok"}, Usage: price.Usage{PromptTokens: 1_000_000_000, CompletionTokens: 1_000_000_000}}
	n := Start(t, Options{Engines: []engine.Engine{eng}})
	body := `{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`
	status, e, b := postRaw(t, n, "/chat/completions", body)
	if status != http.StatusOK {
		t.Fatalf("status %d %+v", status, e)
	}
	var resp struct{ Usage api.Usage }
	if err := json.Unmarshal(b, &resp); err != nil {
		t.Fatal(err)
	}
	want := price.Usage{PromptTokens: uint64(len(body)) + seal.PromptAllowance, CompletionTokens: 3}
	if got := resp.Usage; got.PromptTokens != want.PromptTokens || got.CompletionTokens != want.CompletionTokens {
		t.Errorf("app sees usage %+v, want the bound %+v", got, want)
	}
	cost, _ := price.Default.Cost(want)
	if got := n.Journal.Client(n.ClientKey).Amount; got != cost.Total {
		t.Errorf("client booked %d nanoTON, want %d (the bound's cost)", got, cost.Total)
	}
}
