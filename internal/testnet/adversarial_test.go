package testnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/client"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
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

// sealFor seals a chat request for fake-model to one worker, bound to proxy,
// with the guest key every test proxy serves.
func sealFor(t *testing.T, to seal.Recipient, proxy [32]byte, body string) []byte {
	t.Helper()
	raw, _ := sealSession(t, to, proxy, body)
	return raw
}

// sealSession is sealFor, with the session that opens the answer.
func sealSession(t *testing.T, to seal.Recipient, proxy [32]byte, body string) ([]byte, *seal.ClientSession) {
	t.Helper()
	key := GuestKey
	h := seal.Header{Endpoint: seal.EndpointChat, Model: "fake-model", PriceCap: client.DefaultMaxPrice,
		Expires: time.Now().Add(time.Minute).Unix(), Proxy: proxy}
	rand.Read(h.RequestID[:])
	raw, sess, err := seal.Seal(h, []byte(body), []seal.Recipient{to}, key)
	if err != nil {
		t.Fatal(err)
	}
	return raw, sess
}

const hiBody = `{"model":"fake-model","messages":[{"role":"user","content":"hi"}]}`

// A proxy that relays a client's envelope through another proxy would have
// it billed there. The envelope names its proxy; any other refuses it with
// 421 before routing.
func TestProxyRefusesEnvelopeForAnotherProxy(t *testing.T) {
	eng := newFake("ok")
	n := Start(t, Options{Engines: []engine.Engine{eng}})
	ws, err := n.Client.Directory(context.Background())
	if err != nil || len(ws) != 1 {
		t.Fatalf("directory: %v, %d workers", err, len(ws))
	}
	to := seal.Recipient{KeyID: ws[0].KeyID, PublicKey: ws[0].Bundle.HPKEKey}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	post := func(raw []byte) (int, *api.Error) {
		resp, err := hc.Post(n.ProxyURL+wire.PathRequests, wire.ContentEnvelope, bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, api.ParseError(resp.StatusCode, b)
	}
	other := n.ProxyKey
	other[0] ^= 1
	if status, e := post(sealFor(t, to, other, hiBody)); status != http.StatusMisdirectedRequest || e.Code != "misdirected_request" {
		t.Errorf("envelope for another proxy: %d %+v, want 421 misdirected_request", status, e)
	}
	if eng.Runs() != 0 {
		t.Errorf("the engine ran for a misdirected envelope")
	}
	// The same request bound to this proxy is served.
	if status, e := post(sealFor(t, to, n.ProxyKey, hiBody)); status != http.StatusOK {
		t.Errorf("envelope for this proxy: %d %+v", status, e)
	}
}

// A proxy that does not check (MaliciousProxy) still cannot have a worker
// serve an envelope bound to another proxy: the worker compares the header
// with the TLS key of the proxy it dialed.
func TestWorkerRefusesEnvelopeForAnotherProxy(t *testing.T) {
	n := Start(t, Options{})
	m := StartMaliciousProxy(t)
	eng := newFake("served")
	w, id := n.StartWorker(t, "worker-m", eng, m.Addr, m.Pin)
	to := seal.Recipient{KeyID: w.KeyID(), PublicKey: id.HPKE.PublicKey()}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	typ, payload, err := m.Relay(ctx, sealFor(t, to, n.ProxyKey, hiBody))
	if err != nil {
		t.Fatal(err)
	}
	erec, _ := wire.ParseErrorRecord(payload)
	if typ != seal.RecordError || erec == nil || erec.Status != http.StatusMisdirectedRequest || erec.Code != "misdirected_request" {
		t.Errorf("envelope bound to another proxy: %v record %s, want a 421 misdirected_request error", typ, payload)
	}
	if eng.Runs() != 0 {
		t.Errorf("the engine ran for a misdirected envelope")
	}
	// Bound to the proxy the worker dialed, it is served.
	if typ, payload, err := m.Relay(ctx, sealFor(t, to, m.Key, hiBody)); err != nil || typ != seal.RecordChunk {
		t.Errorf("envelope bound to the worker's proxy: %v record %s, %v", typ, payload, err)
	}
}

const secret = "the secret word is marmalade-7731"

// vLLM's 400s quote the prompt, and the worker once put engine errors in the
// clear error record. Now the proxy's recorder never sees the text (before
// the first chunk or mid-stream), and the app still gets the real message.
func TestEngineErrorTextNeverInClear(t *testing.T) {
	for _, tc := range []struct {
		name   string
		after  int // objects emitted before the engine fails
		stream bool
	}{{"before the first chunk", 0, false}, {"mid-stream", 2, true}} {
		t.Run(tc.name, func(t *testing.T) {
			eng := &enginetest.RogueEngine{FakeEngine: enginetest.FakeEngine{Text: "one two three four"}, Echo: true, EchoAfter: tc.after}
			n := Start(t, Options{Engines: []engine.Engine{eng}})
			body := `{"model":"fake-model","messages":[{"role":"user","content":"` + secret + `"}]`
			if tc.stream {
				body += `,"stream":true`
			}
			status, e, b := postRaw(t, n, "/chat/completions", body+"}")
			if tc.stream {
				if status != http.StatusOK || !bytes.Contains(b, []byte(`"error"`)) || !bytes.Contains(b, []byte(secret)) {
					t.Errorf("stream: %d %s; want an SSE error event quoting the engine", status, b)
				}
			} else if status != http.StatusBadRequest || !strings.Contains(e.Message, secret) || e.Sealed != nil {
				t.Errorf("app got %d %+v; want 400 with the engine's message", status, e)
			}
			if eng.Runs() != 1 {
				t.Fatalf("engine ran %d times", eng.Runs())
			}
			rec := n.Recorder.Bytes()
			if bytes.Contains(rec, []byte("marmalade")) {
				t.Errorf("the proxy saw the engine's error text in the clear")
			}
			if !bytes.Contains(rec, []byte(`"code":"invalid_request"`)) {
				t.Errorf("the proxy did not see the error's clear code")
			}
		})
	}
}

// api.ParseRequest's errors on the opened body quote it (a bad role, here):
// the worker seals them too, and only the client can read them.
func TestRequestErrorsOnOpenedBodySealed(t *testing.T) {
	n := Start(t, Options{Engines: []engine.Engine{newFake("ok")}})
	ws, err := n.Client.Directory(context.Background())
	if err != nil || len(ws) != 1 {
		t.Fatalf("directory: %v, %d workers", err, len(ws))
	}
	to := seal.Recipient{KeyID: ws[0].KeyID, PublicKey: ws[0].Bundle.HPKEKey}
	raw, sess := sealSession(t, to, n.ProxyKey, `{"model":"fake-model","messages":[{"role":"`+secret+`","content":"hi"}]}`)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Post(n.ProxyURL+wire.PathRequests, wire.ContentEnvelope, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(b, []byte("marmalade")) {
		t.Fatalf("the proxy relayed the body's text in the clear: %s", b)
	}
	e := api.ParseError(resp.StatusCode, b)
	if resp.StatusCode != http.StatusBadRequest || e.Sealed == nil {
		t.Fatalf("got %d %s; want a 400 with a sealed detail", resp.StatusCode, b)
	}
	detail, err := sess.OpenError(e.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := wire.ParseErrorRecord(detail)
	if err != nil || !strings.Contains(inner.Message, "marmalade") || inner.Param != "messages[0].role" {
		t.Errorf("sealed detail %s (%v); want the parser's message and param", detail, err)
	}
}

// What the proxy relays of a streamed answer: every chunk after the first
// (which carries the response salt) has one size, whatever its token.
func TestChunkSizesHideTokenLengthsAtTheProxy(t *testing.T) {
	var mu sync.Mutex
	sizes := map[int]int{} // sealed chunk size → count, after chunk 0
	chunks := 0
	tamper := func(b []byte) []byte {
		if len(b) > 0 && seal.RecordType(b[0]) == seal.RecordChunk {
			mu.Lock()
			if chunks++; chunks > 1 {
				sizes[len(b)]++
			}
			mu.Unlock()
		}
		return b
	}
	eng := &enginetest.FakeEngine{Text: "I am a tokenizer's extraordinarily unpredictable output, ok?"}
	n := Start(t, Options{Engines: []engine.Engine{eng}, Tamper: tamper})
	status, e, _ := postRaw(t, n, "/chat/completions", `{"model":"fake-model","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if status != http.StatusOK {
		t.Fatalf("status %d %+v", status, e)
	}
	mu.Lock()
	defer mu.Unlock()
	if chunks < 8 || len(sizes) != 1 {
		t.Errorf("the proxy relayed %d chunks of sizes %v; want one size after the first", chunks, sizes)
	}
}

// An unpinned client binds its envelopes to the key the proxy showed when it
// served the directory, and is served.
func TestUnpinnedClientBindsToTheProxyItReached(t *testing.T) {
	n := Start(t, Options{Engines: []engine.Engine{newFake("ok")}, Unpinned: true})
	if status, e, _ := postRaw(t, n, "/chat/completions", hiBody); status != http.StatusOK {
		t.Fatalf("unpinned client: %d %+v", status, e)
	}
}
