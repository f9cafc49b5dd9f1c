package testnet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/nvidia"
	"github.com/cocoon-go/cocoon/attest/nvidia/nvidiatest"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
)

// gated emits the first n objects of an answer, then waits for release
// before it emits the rest: an answer in flight for as long as a test wants.
type gated struct {
	*enginetest.FakeEngine
	n       int
	reached chan struct{} // closed once an answer has emitted n objects
	release chan struct{}
	once    sync.Once
}

func (g *gated) Run(ctx context.Context, req *engine.Request, emit engine.Emit) (price.Usage, error) {
	count := 0
	return g.FakeEngine.Run(ctx, req, func(b []byte) error {
		if count == g.n {
			g.once.Do(func() { close(g.reached) })
			select {
			case <-g.release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		count++
		return emit(b)
	})
}

// proxyDirectory returns the key bundles in the proxy's directory, as any
// client would read them, by key ID.
func proxyDirectory(t *testing.T, n *Net) map[[32]byte]*attest.Bundle {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Get(n.ProxyURL + wire.PathDirectory)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d wire.Directory
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	out := map[[32]byte]*attest.Bundle{}
	for _, w := range d.Workers {
		e, err := attest.ParseEvidence(w.Evidence)
		if err != nil {
			t.Fatal(err)
		}
		b, err := attest.ParseBundle(e.Bundle)
		if err != nil {
			t.Fatal(err)
		}
		out[sha256.Sum256(e.Bundle)] = b
	}
	return out
}

// TestBundleRefreshIsSeamless refreshes a GPU worker's evidence, and so its
// key bundle, while a client holds the old bundle and an answer streams: the
// proxy keeps the connection and lists the new bundle, the answer completes,
// and requests sealed to the old key ID and to the new one are both served.
func TestBundleRefreshIsSeamless(t *testing.T) {
	nras := nvidiatest.NewNRAS()
	defer nras.Close()
	eng := &gated{FakeEngine: newFake("one two three four five six"), n: 2, reached: make(chan struct{}), release: make(chan struct{})}
	_, priv, _ := ed25519.GenerateKey(nil) // a second client, with the new bundle
	n := Start(t, Options{
		Engines: []engine.Engine{eng},
		Clients: []string{hex.EncodeToString(priv.Public().(ed25519.PublicKey))},
		GPU:     []attest.GPUProducer{&nvidia.Producer{Collector: nvidiatest.Collector{GPUs: 1}, NRAS: nras.Client()}},
		Checker: func(_ string, c *attest.Checker) { c.GPU = nvidia.NewVerifier(nras.Keys()) },
		// A bundle's times are in seconds: after a second, the next hello
		// the proxy asks for makes the worker publish a new bundle.
		GPURefresh:    time.Second,
		HelloInterval: 20 * time.Millisecond,
		DirectoryTTL:  time.Hour, // the client keeps the bundle it first saw
	})
	ctx := context.Background()
	old := n.Workers[0].KeyID()
	held, err := n.Client.Directory(ctx)
	if err != nil || len(held) != 1 || held[0].KeyID != old {
		t.Fatalf("client's directory: %v, %d workers", err, len(held))
	}
	links := n.Links.Accepted()

	stream := sdk(n).Chat.Completions.NewStreaming(ctx, chat("go"))
	<-eng.reached
	var current [32]byte
	if !waitfor.Holds(func() bool {
		current = n.Workers[0].KeyID()
		_, listed := proxyDirectory(t, n)[current]
		return current != old && listed
	}) {
		t.Fatalf("the proxy does not list the worker's refreshed bundle (worker's key ID changed: %v)", current != old)
	}
	dir := proxyDirectory(t, n)
	if len(dir) != 1 {
		t.Errorf("proxy's directory lists %d bundles, want only the new one", len(dir))
	}
	if b := dir[current]; b == nil || b.Created <= held[0].Bundle.Created || !b.SigningKey.Equal(held[0].Bundle.SigningKey) || !bytes.Equal(b.HPKEKey, held[0].Bundle.HPKEKey) {
		t.Errorf("new bundle %+v, want a later one with the same keys", b)
	}

	close(eng.release)
	var text strings.Builder
	for stream.Next() {
		if ch := stream.Current(); len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil || text.String() != "one two three four five six" {
		t.Errorf("answer in flight during the refresh: %q, %v", text.String(), err)
	}

	// The client still seals to the old key ID.
	resp, err := sdk(n).Chat.Completions.New(ctx, chat("after"))
	if err != nil {
		t.Fatalf("request sealed to the superseded bundle: %v", err)
	}
	if resp.Choices[0].Message.Content != "one two three four five six" {
		t.Errorf("answer %q", resp.Choices[0].Message.Content)
	}
	if dir, _ := n.Client.Directory(ctx); len(dir) != 1 || dir[0].KeyID != old {
		t.Error("the client's directory moved on: the request was not sealed to the old key ID")
	}
	if a := waitfor.Value(func() accounts.Account { return n.Ledger.Worker(hexID(old)) }, func(a accounts.Account) bool { return a.Requests == 2 }); a.Requests != 2 {
		t.Errorf("booked to the old key ID: %d requests, want 2", a.Requests)
	}

	// A client with the new bundle is served as well.
	h := seal.Header{RequestID: [16]byte{1}, Endpoint: api.EndpointChat, Model: enginetest.DefaultModel, PriceCap: price.Default,
		Expires: time.Now().Add(time.Minute).Unix(), ClientKey: priv.Public().(ed25519.PublicKey), Proxy: n.ProxyKey}
	raw, _, err := seal.Seal(h, []byte(`{"model":"`+enginetest.DefaultModel+`","messages":[{"role":"user","content":"hi"}]}`),
		[]seal.Recipient{{KeyID: current, PublicKey: dir[current].HPKEKey}}, priv)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	post, err := hc.Post(n.ProxyURL+wire.PathRequests, wire.ContentEnvelope, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, post.Body)
	post.Body.Close()
	if post.StatusCode != http.StatusOK {
		t.Errorf("request sealed to the new bundle: HTTP %d", post.StatusCode)
	}
	client := hex.EncodeToString(h.ClientKey)
	if a := waitfor.Value(func() accounts.Account { return n.Ledger.Client(client) }, func(a accounts.Account) bool { return a.Requests == 1 }); a.Requests != 1 {
		t.Errorf("request sealed to the new bundle booked %d times, want 1", a.Requests)
	}
	if a := n.Ledger.Worker(hexID(current)); a.Requests != 1 {
		t.Errorf("booked to the new key ID: %d requests, want 1", a.Requests)
	}

	if got := n.Links.Accepted(); got != links {
		t.Errorf("the worker dialled the proxy %d more times: the refresh cost its connection", got-links)
	}
	if got := n.Proxy.Workers(); got != 1 {
		t.Errorf("proxy has %d workers, want 1", got)
	}
	if errs := n.Refusals("proxy"); len(errs) > 0 {
		t.Errorf("proxy refusals: %v", errs)
	}
}
