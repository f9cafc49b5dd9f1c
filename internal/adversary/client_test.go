package adversary

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/client"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/internal/testnet"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/node"
	"github.com/cocoon-go/cocoon/seal"
)

// chatBody is an app's chat request for a short answer of at most 10 tokens.
func chatBody(stream bool) string {
	return `{"model":"` + model + `","max_tokens":10,"stream":` + strconv.FormatBool(stream) + `,"messages":[{"role":"user","content":"hi"}]}`
}

// worstCase is what the client holds for chatBody: one definition, seal's.
func worstCase(stream bool) uint64 {
	return seal.MaxCost(&seal.Header{MaxTokens: 10, PriceCap: client.DefaultMaxPrice}, len(chatBody(stream)))
}

// appPost sends body to the client's chat endpoint as an app with key ("": none).
// It gives up after five seconds.
func appPost(t *testing.T, n *testnet.Net, key, body string) (*http.Response, *api.Error) {
	req, _ := http.NewRequest(http.MethodPost, n.BaseURL+"/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return &http.Response{Header: http.Header{}}, &api.Error{Message: err.Error()}
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	return resp, api.ParseError(resp.StatusCode, b)
}

// Finding 6: an engine's usage is bounded per request by seal, but a
// client could still spend without end. It refuses a request whose worst
// case is over its per-request cap before sending it, and holds worst cases
// in flight and booked costs against a per-minute cap.
func TestClientSpendCaps(t *testing.T) {
	worst := worstCase(false)
	g := newGated(t, 0)
	n := testnet.Start(t, testnet.Options{Engines: []engine.Engine{g}, ClientConfig: func(c *client.Config) {
		c.MaxRequestCost = worst
		c.MaxSpendPerMinute = worst + worst/2
	}})
	// Over the per-request cap: refused, naming it, before the proxy sees it.
	big := strings.Replace(chatBody(false), `"max_tokens":10`, `"max_tokens":1000`, 1)
	if _, e := appPost(t, n, "", big); e == nil || e.Status != http.StatusBadRequest || e.Param != "max_tokens" || !strings.Contains(e.Message, "max_request_cost") {
		t.Fatalf("a request over the per-request cap: %v", e)
	}
	if got := n.Ledger.Client(n.ClientKey).Requests; got != 0 {
		t.Fatalf("the proxy booked %d requests; a request over the cap must not be sent", got)
	}
	// One request in flight holds its worst case: a second does not fit.
	first := make(chan *api.Error, 1)
	go func() {
		_, e := appPost(t, n, "", chatBody(false))
		first <- e
	}()
	<-g.reached
	resp, e := appPost(t, n, "", chatBody(false))
	if e == nil || e.Status != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("a second request while the first holds the per-minute cap: %v (Retry-After %q)", e, resp.Header.Get("Retry-After"))
	}
	g.release()
	if e := <-first; e != nil {
		t.Fatalf("first request: %v", e)
	}
	// Booked, the first costs what its receipt says, far below its worst
	// case, which leaves room for another.
	if _, e := appPost(t, n, "", chatBody(false)); e != nil {
		t.Fatalf("a request after the first was booked at its actual cost: %v", e)
	}
}

// Finding 17: an app must present one of the client's API keys, and each
// key spends up to its own limit, kept across restarts in the journal.
func TestAPIKeyRequiredAndLimited(t *testing.T) {
	secret, entry := client.NewAPIKey("app", 1)
	other, otherEntry := client.NewAPIKey("other", 1_000_000_000)
	n := testnet.Start(t, testnet.Options{Engines: []engine.Engine{&enginetest.FakeEngine{}}, ClientConfig: func(c *client.Config) {
		entry.Limit = worstCase(false) // room for one request, not two
		c.APIKeys = []client.APIKey{entry, otherEntry}
	}})
	for _, key := range []string{"", "sk-wrong", other + "x"} {
		if _, e := appPost(t, n, key, chatBody(false)); e == nil || e.Status != http.StatusUnauthorized || e.Code != "invalid_api_key" {
			t.Errorf("API key %q: %v, want 401 invalid_api_key", key, e)
		}
	}
	if _, e := appPost(t, n, secret, chatBody(false)); e != nil {
		t.Fatalf("a request within the key's limit: %v", e)
	}
	if _, e := appPost(t, n, secret, chatBody(false)); e == nil || e.Status != http.StatusTooManyRequests || e.Code != "insufficient_quota" {
		t.Fatalf("a request past the key's limit: %v, want 429 insufficient_quota", e)
	}
	if _, e := appPost(t, n, other, chatBody(false)); e != nil {
		t.Fatalf("another key with room left: %v", e)
	}
	spent := n.Journal.APIKey("app").Amount
	if spent == 0 || spent != n.Journal.Client(n.ClientKey).Amount-n.Journal.APIKey("other").Amount {
		t.Errorf("the journal books %d nanoTON for key app", spent)
	}
	// A client started again on the same journal remembers what it spent.
	again, err := client.New(client.Config{Proxy: n.ProxyURL, APIKeys: []client.APIKey{entry}}, testnet.GuestKey,
		attest.NewCache(&attest.Checker{}), n.Journal, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(again.Handler())
	defer srv.Close()
	n.BaseURL = srv.URL + "/v1"
	if _, e := appPost(t, n, secret, chatBody(false)); e == nil || e.Code != "insufficient_quota" {
		t.Errorf("after a restart, a request past the key's limit: %v, want 429 insufficient_quota", e)
	}
}

// Finding 17: nothing stopped `--addr 0.0.0.0:10000`, which hands the
// client's deposit to whoever reaches it.
func TestNonLoopbackClientNeedsAPIKeys(t *testing.T) {
	dir := t.TempDir()
	rootPath, meas, err := node.SimulatedVendor(filepath.Join(dir, "tee"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.ClientConfig{DataDir: filepath.Join(dir, "client"), Listen: "0.0.0.0:0",
		Trust:  node.Trust{SimulatedRoots: []string{rootPath}, SimulatedMeasurements: []string{meas}},
		Client: client.Config{Proxy: "https://127.0.0.1:1"}}
	c, err := node.StartClient(cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		c.Close()
		t.Fatal("a client without API keys listened on every address")
	}
	if !strings.Contains(err.Error(), "API keys") {
		t.Errorf("refusal %q does not say API keys are needed", err)
	}
	_, entry := client.NewAPIKey("app", 1_000_000_000)
	cfg.Client.APIKeys = []client.APIKey{entry}
	c, err = node.StartClient(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("with API keys: %v", err)
	}
	c.Close()
}

// Finding 4, client side: an app that hangs up mid-answer has still asked
// for it; the worker serves it and the proxy books it. The stock client
// reads the answer on, checks its receipt and pays for it.
func TestAppHangUpStillPaysTheReceipt(t *testing.T) {
	g := newGated(t, 1)
	n := testnet.Start(t, testnet.Options{Engines: []engine.Engine{g}})
	// The app's side of the client, watched: its request's context ends
	// when the app hangs up, while the client reads the answer on.
	hungUp := make(chan struct{})
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		context.AfterFunc(r.Context(), func() { close(hungUp) })
		n.Client.Handler().ServeHTTP(w, r)
	}))
	defer app.Close()
	req, _ := http.NewRequest(http.MethodPost, app.URL+"/v1/chat/completions", strings.NewReader(chatBody(true)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d", resp.StatusCode)
	}
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	<-g.reached
	resp.Body.Close() // the app hangs up
	select {
	case <-hungUp:
	case <-time.After(waitfor.Timeout):
		t.Fatal("the client did not see the app hang up")
	}
	g.release()
	proxyBooked := waitfor.Value(requests(n, n.ClientKey), func(a accounts.Account) bool { return a.Requests == 1 })
	if proxyBooked.Requests != 1 {
		t.Fatalf("the proxy booked %d answers", proxyBooked.Requests)
	}
	paid := waitfor.Value(func() accounts.Account { return n.Journal.Client(n.ClientKey) }, func(a accounts.Account) bool { return a.Requests == 1 })
	if paid.Requests != 1 || paid.Amount != proxyBooked.Amount {
		t.Errorf("the client booked %d answers for %d nanoTON; the proxy booked %d nanoTON for the answer the app hung up on",
			paid.Requests, paid.Amount, proxyBooked.Amount)
	}
}
