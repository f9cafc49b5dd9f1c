package testnet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
)

func newFake(answer string) *enginetest.FakeEngine { return &enginetest.FakeEngine{Text: answer} }

// signalling closes emitted once its engine has emitted n objects.
type signalling struct {
	*enginetest.FakeEngine
	n       int
	emitted chan struct{}
}

func (s *signalling) Run(ctx context.Context, req *engine.Request, emit engine.Emit) (price.Usage, error) {
	count := 0
	return s.FakeEngine.Run(ctx, req, func(b []byte) error {
		err := emit(b)
		if count++; count == s.n {
			close(s.emitted)
		}
		return err
	})
}

func lastPrompt(f *enginetest.FakeEngine) string {
	r := f.LastRequest()
	if r == nil || len(r.Messages) == 0 {
		return ""
	}
	return r.Messages[len(r.Messages)-1].Content
}

func sdk(n *Net) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(n.BaseURL), option.WithAPIKey("unused"), option.WithMaxRetries(0))
	return &c
}

func chat(prompt string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    "fake-model",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage(prompt)},
	}
}

// costOf reads the nanoTON cost fields the SDK keeps as extra JSON.
func costOf(t *testing.T, raw string) (prompt, completion, total uint64) {
	t.Helper()
	var u api.Usage
	if err := json.Unmarshal([]byte(raw), &u); err != nil {
		t.Fatalf("usage %s: %v", raw, err)
	}
	return u.PromptTotalCost, u.CompletionTotalCost, u.TotalCost
}

func TestChatThroughNetworkWithSDK(t *testing.T) {
	eng := newFake("Let there be light and there was light")
	n := Start(t, Options{Engines: []engine.Engine{eng, eng}})
	c := sdk(n)
	ctx := context.Background()

	models, err := c.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models.Data) != 1 || models.Data[0].ID != "fake-model" {
		t.Fatalf("models = %+v", models.Data)
	}

	resp, err := c.Chat.Completions.New(ctx, chat("say something"))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Choices[0].Message.Content; got != "Let there be light and there was light" {
		t.Errorf("content = %q", got)
	}
	if resp.Usage.CompletionTokens != 8 {
		t.Errorf("completion tokens = %d, want 8", resp.Usage.CompletionTokens)
	}
	p, cpl, total := costOf(t, resp.Usage.RawJSON())
	want, _ := price.Default.Cost(price.Usage{PromptTokens: uint64(resp.Usage.PromptTokens), CompletionTokens: 8})
	if p != want.Prompt || cpl != want.Completion || total != want.Total || total == 0 {
		t.Errorf("costs = %d/%d/%d, want %+v", p, cpl, total, want)
	}
	if got := lastPrompt(eng); got != "say something" {
		t.Errorf("engine saw prompt %q", got)
	}

	// Streaming, with usage.
	params := chat("stream it")
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	var text strings.Builder
	var chunks int
	var usage openai.CompletionUsage
	for stream.Next() {
		ch := stream.Current()
		chunks++
		if len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
		}
		if ch.Usage.TotalTokens > 0 {
			usage = ch.Usage
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != "Let there be light and there was light" || chunks < 9 {
		t.Errorf("streamed %q in %d chunks", text.String(), chunks)
	}
	if _, _, total := costOf(t, usage.RawJSON()); usage.CompletionTokens != 8 || total == 0 {
		t.Errorf("stream usage = %s", usage.RawJSON())
	}

	// The proxy booked both answers to this client (it books a receipt just
	// after relaying it), and the client kept the receipts.
	acct := waitfor.Value(func() accounts.Account { return n.Ledger.Client(n.ClientKey) }, func(a accounts.Account) bool { return a.Requests == 2 })
	if acct.Requests != 2 || acct.Amount != want.Total+mustCost(t, usage) {
		t.Errorf("proxy books %+v", acct)
	}
	if got := n.Journal.Client(n.ClientKey); got != acct {
		t.Errorf("client journal %+v != proxy books %+v", got, acct)
	}
}

func mustCost(t *testing.T, u openai.CompletionUsage) uint64 {
	_, _, total := costOf(t, u.RawJSON())
	return total
}

func TestProxySeesNoPlaintext(t *testing.T) {
	const prompt = "my secret is PLUGH-4471-KESTREL"
	eng := newFake("the password is XYZZY-9921-HERON")
	n := Start(t, Options{Engines: []engine.Engine{eng}})
	c := sdk(n)
	resp, err := c.Chat.Completions.New(context.Background(), chat(prompt))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(resp.Choices[0].Message.Content, "XYZZY-9921-HERON") {
		t.Fatalf("answer %q", resp.Choices[0].Message.Content)
	}
	stream := c.Chat.Completions.NewStreaming(context.Background(), chat(prompt))
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	seen := n.Recorder.Bytes()
	if len(seen) < 1000 {
		t.Fatalf("recorded only %d bytes; the recorder is not in the path", len(seen))
	}
	for _, secret := range []string{"PLUGH-4471", "KESTREL", "XYZZY-9921", "HERON", "be brief"} {
		if bytes.Contains(seen, []byte(secret)) {
			t.Errorf("the proxy saw %q in the clear", secret)
		}
	}
	// The routing fields, by design, are visible.
	if !bytes.Contains(seen, []byte("fake-model")) {
		t.Error("model name not visible to the proxy; is the recorder working?")
	}
}

func TestRetryOnAnotherWorkerBeforeStreaming(t *testing.T) {
	broken := &enginetest.FakeEngine{Text: "never", Fail: true}
	good := newFake("fine thanks")
	n := Start(t, Options{Engines: []engine.Engine{broken, good}, Fanout: 2})
	c := sdk(n)
	for i := range 4 {
		resp, err := c.Chat.Completions.New(context.Background(), chat("hello"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if resp.Choices[0].Message.Content != "fine thanks" {
			t.Fatalf("request %d: %q", i, resp.Choices[0].Message.Content)
		}
	}
	if broken.Runs() == 0 {
		t.Error("the broken worker was never tried, so failover was not exercised")
	}
	if got := n.Ledger.Worker(hexID(n.Workers[0].KeyID())).Requests; got != 0 {
		t.Errorf("broken worker was paid for %d requests", got)
	}
	good4 := waitfor.Value(func() accounts.Account { return n.Ledger.Worker(hexID(n.Workers[1].KeyID())) }, func(a accounts.Account) bool { return a.Requests == 4 })
	if got := good4.Requests; got != 4 {
		t.Errorf("good worker paid for %d requests, want 4", got)
	}
}

func TestWorkerLostMidStreamIsAnErrorAndCostsNothing(t *testing.T) {
	eng := &signalling{FakeEngine: &enginetest.FakeEngine{Text: "one two three four five six", Block: true, BlockAfter: 2}, n: 2, emitted: make(chan struct{})}
	n := Start(t, Options{Engines: []engine.Engine{eng}})
	c := sdk(n)
	stream := c.Chat.Completions.NewStreaming(context.Background(), chat("go"))
	go func() {
		<-eng.emitted
		n.StopWorker(0)
	}()
	var text strings.Builder
	for stream.Next() {
		if ch := stream.Current(); len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
		}
	}
	if stream.Err() == nil {
		t.Fatalf("a cut stream ended without error after %q", text.String())
	}
	// The cut may lose what was in flight, never reorder or invent it.
	if got := text.String(); got == "" || !strings.HasPrefix("one two", got) {
		t.Errorf("received %q before the cut", got)
	}
	if a := n.Ledger.Client(n.ClientKey); a.Requests != 0 || a.Amount != 0 {
		t.Errorf("client charged for a cut answer: %+v", a)
	}
}

func TestTamperedAnswerIsRefused(t *testing.T) {
	eng := newFake("a perfectly good answer with some words in it")
	var flipped atomic.Bool
	n := Start(t, Options{Engines: []engine.Engine{eng}, Tamper: func(b []byte) []byte {
		if len(b) > 64 && flipped.CompareAndSwap(false, true) {
			b[len(b)-20] ^= 1
		}
		return b
	}})
	_, err := sdk(n).Chat.Completions.New(context.Background(), chat("hi"))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadGateway {
		t.Fatalf("err = %v, want a 502 from the client", err)
	}
	if !flipped.Load() {
		t.Fatal("nothing was tampered with")
	}
	if a := n.Journal.Client(n.ClientKey); a.Requests != 0 {
		t.Errorf("client accepted a cost for a tampered answer: %+v", a)
	}
}

func TestErrorsUseOpenAIShapeAndStatus(t *testing.T) {
	n := Start(t, Options{Engines: []engine.Engine{newFake("ok")}, CreditLimit: 1})
	post := func(path, body string) (int, *api.Error, http.Header) {
		resp, err := http.Post(n.BaseURL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, api.ParseError(resp.StatusCode, b), resp.Header
	}
	msg := `{"model":"fake-model","messages":[{"role":"user","content":"hi"}]}`
	for _, tc := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"unknown model", "/chat/completions", `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, 404, "model_not_found"},
		{"malformed", "/chat/completions", `{"model":`, 400, ""},
		{"bad field", "/chat/completions", `{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}`, 400, ""},
		{"too large", "/chat/completions", `{"model":"fake-model","messages":[{"role":"user","content":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}]}`, 413, "request_too_large"},
		{"unknown path", "/embeddings", msg, 404, "unknown_url"},
		// What a request may cost is held against the client's credit
		// before it is routed: 1 nanoTON covers no request.
		{"over the credit", "/chat/completions", msg, 402, "credit_limit"},
	} {
		status, e, h := post(tc.path, tc.body)
		if status != tc.status {
			t.Errorf("%s: status %d (%s), want %d", tc.name, status, e.Message, tc.status)
			continue
		}
		wantCT := "application/json"
		if strings.Contains(tc.body, `"stream":true`) {
			wantCT = "text/event-stream"
		}
		if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, wantCT) {
			t.Errorf("%s: Content-Type %q", tc.name, ct)
		}
		if status != 200 && (e.Message == "" || (tc.code != "" && e.Code != tc.code)) {
			t.Errorf("%s: error %+v, want code %q", tc.name, e, tc.code)
		}
	}
	if status, _, h := post("/models", ""); status != http.StatusMethodNotAllowed && status != http.StatusNotFound {
		t.Errorf("POST /models: %d", status)
	} else if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") && status != http.StatusMethodNotAllowed {
		t.Errorf("POST /models: Content-Type %q", ct)
	}
	if _, e, _ := post("/chat/completions", `{"model":"fake-model","messages":[{"role":"user","content":"hi"}],"temperature":"hot"}`); e.Param != "temperature" {
		t.Errorf("bad field error does not name it: %+v", e)
	}

	// No worker at all → 503.
	n.StopWorker(0)
	waitfor.Until(t, "the proxy to drop the stopped worker", func() bool { return n.Proxy.Workers() == 0 })
	waitfor.Until(t, "the client's directory to drop it", func() bool {
		v, err := n.Client.Directory(context.Background())
		return err == nil && len(v) == 0
	})
	if status, e, _ := post("/chat/completions", msg); status != 503 {
		t.Errorf("no workers: status %d %+v, want 503", status, e)
	}
}

func hexID(id [32]byte) string { return fmt.Sprintf("%x", id) }

func TestProxyRefusesForgedClientSignature(t *testing.T) {
	eng := newFake("should never be seen")
	_, priv, _ := ed25519.GenerateKey(nil)
	n := Start(t, Options{Engines: []engine.Engine{eng}, Clients: []string{hex.EncodeToString(priv.Public().(ed25519.PublicKey))}})
	v, err := n.Client.Directory(context.Background())
	if err != nil || len(v) != 1 {
		t.Fatalf("directory: %v %d", err, len(v))
	}
	h := seal.Header{RequestID: [16]byte{1}, Endpoint: api.EndpointChat, Model: "fake-model", PriceCap: price.Default,
		Expires: time.Now().Add(time.Minute).Unix(), ClientKey: priv.Public().(ed25519.PublicKey), Proxy: n.ProxyKey}
	body := []byte(`{"model":"fake-model","messages":[{"role":"user","content":"hi"}]}`)
	to := []seal.Recipient{{KeyID: v[0].KeyID, PublicKey: v[0].Bundle.HPKEKey}}
	good, _, err := seal.Seal(h, body, to, priv)
	if err != nil {
		t.Fatal(err)
	}
	// A forger claiming priv's account cannot produce its signature; a
	// damaged one stands in for it (the signature ends the envelope).
	forged := bytes.Clone(good)
	forged[len(forged)-1] ^= 1
	if _, err := seal.ParseEnvelope(forged); err != nil {
		t.Fatalf("the forged envelope should parse: %v", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	post := func(raw []byte) int {
		resp, err := hc.Post(n.ProxyURL+wire.PathRequests, wire.ContentEnvelope, bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := post(forged); got != http.StatusUnauthorized {
		t.Errorf("forged signature: status %d, want 401", got)
	}
	if got := post(good); got != http.StatusOK {
		t.Errorf("genuine envelope: status %d, want 200", got)
	}
	if a := waitfor.Value(func() accounts.Account { return n.Ledger.Client(hex.EncodeToString(h.ClientKey)) }, func(a accounts.Account) bool { return a.Requests == 1 }); a.Requests != 1 {
		t.Errorf("books for the account: %+v, want only the genuine request", a)
	}
}

func TestWorkersReconnectAfterTheLinkDrops(t *testing.T) {
	n := Start(t, Options{Engines: []engine.Engine{newFake("still here"), newFake("still here")}})
	c := sdk(n)
	if _, err := c.Chat.Completions.New(context.Background(), chat("before")); err != nil {
		t.Fatal(err)
	}
	before := n.Links.Accepted()
	n.Links.Cut()
	// Both workers dial again (after their backoff) and are admitted anew.
	if !waitfor.Holds(func() bool { return n.Links.Accepted() >= before+2 && n.Proxy.Workers() >= 2 }) {
		t.Fatalf("after the cut: %d new connections, %d workers admitted", n.Links.Accepted()-before, n.Proxy.Workers())
	}
	waitfor.Until(t, "the client's directory to list both workers again", func() bool {
		v, err := n.Client.Directory(context.Background())
		return err == nil && len(v) == 2
	})
	resp, err := c.Chat.Completions.New(context.Background(), chat("after"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content != "still here" {
		t.Errorf("after reconnecting: %q", resp.Choices[0].Message.Content)
	}
}
