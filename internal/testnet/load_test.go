package testnet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
)

// slow is an engine that takes a while over every answer (the work of a
// real model) and records how many answers it ran at once.
type slow struct {
	*enginetest.FakeEngine
	delay time.Duration
	now   atomic.Int64
	peak  atomic.Int64
}

func (s *slow) Run(ctx context.Context, req *engine.Request, emit engine.Emit) (price.Usage, error) {
	n := s.now.Add(1)
	defer s.now.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	select {
	case <-time.After(s.delay): // the model's work, not a test's wait
	case <-ctx.Done():
		return price.Usage{}, ctx.Err()
	}
	return s.FakeEngine.Run(ctx, req, emit)
}

// burst sends count chat requests at once to the client's OpenAI API and
// returns how many ended with each HTTP status.
func burst(t testing.TB, n *Net, count int) map[int]int {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: count}}
	defer hc.CloseIdleConnections()
	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for i := range count {
		wg.Go(func() {
			body := fmt.Sprintf(`{"model":"fake-model","messages":[{"role":"user","content":"request %d"}]}`, i)
			status := 0
			resp, err := hc.Post(n.BaseURL+"/chat/completions", "application/json", strings.NewReader(body))
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				status = resp.StatusCode
				if status != http.StatusOK {
					t.Logf("request %d: %d %s", i, status, b)
				}
			}
			mu.Lock()
			statuses[status]++
			mu.Unlock()
		})
	}
	wg.Wait()
	return statuses
}

// A burst of requests well beyond the workers' capacity waits for free
// slots instead of failing: every request is answered, and no engine runs
// more requests at once than its worker's capacity.
func TestBurstIsQueuedNotFailed(t *testing.T) {
	const capacity, count = 4, 100
	engines := []*slow{
		{FakeEngine: newFake("a slow answer"), delay: 20 * time.Millisecond},
		{FakeEngine: newFake("a slow answer"), delay: 20 * time.Millisecond},
	}
	n := Start(t, Options{Engines: []engine.Engine{engines[0], engines[1]}, Capacity: capacity, Fanout: 2, Unrecorded: true,
		CreditLimit: 1000 * 1_000_000_000}) // credit for the whole burst in flight: this test is about slots
	statuses := burst(t, n, count)
	if statuses[http.StatusOK] != count {
		t.Errorf("statuses %v, want all %d 200", statuses, count)
	}
	for i, e := range engines {
		if p := e.peak.Load(); p > capacity {
			t.Errorf("worker %d ran %d requests at once, over its capacity %d", i, p, capacity)
		}
	}
}

// proxyPoster posts sealed envelopes straight to n's proxy, as the guest
// client (GuestKey), for tests that look at the proxy's own answers.
type proxyPoster struct {
	t  *testing.T
	n  *Net
	to seal.Recipient
	hc *http.Client
}

func newProxyPoster(t *testing.T, n *Net) *proxyPoster {
	ws, err := n.Client.Directory(context.Background())
	if err != nil || len(ws) != 1 {
		t.Fatalf("directory: %v, %d workers", err, len(ws))
	}
	return &proxyPoster{t: t, n: n, to: seal.Recipient{KeyID: ws[0].KeyID, PublicKey: ws[0].Bundle.HPKEKey},
		hc: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}}
}

// post sends one request and returns the response, its body read.
func (p *proxyPoster) post() (*http.Response, []byte) {
	resp, err := p.hc.Post(p.n.ProxyURL+wire.PathRequests, wire.ContentEnvelope, bytes.NewReader(sealFor(p.t, p.to, p.n.ProxyKey, hiBody)))
	if err != nil {
		p.t.Error(err)
		return &http.Response{}, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// wantRateLimited checks that resp is a 429 in OpenAI's shape with a
// Retry-After.
func wantRateLimited(t *testing.T, what string, resp *http.Response, body []byte) {
	t.Helper()
	e := api.ParseError(resp.StatusCode, body)
	if resp.StatusCode != http.StatusTooManyRequests || e.Type != api.TypeRateLimit || e.Code != api.CodeRateLimit {
		t.Errorf("%s: %d %s, want 429 %s", what, resp.StatusCode, body, api.CodeRateLimit)
	}
	if ra := resp.Header.Get("Retry-After"); ra == "" {
		t.Errorf("%s: no Retry-After", what)
	}
}

// A request that finds its worker busy and its model's queue full is
// answered at once with 429 and Retry-After, in OpenAI's shape, at the
// proxy and as the app sees it through the client; it holds no credit
// after. The requests ahead of it are served.
func TestFullQueueAnswers429WithRetryAfter(t *testing.T) {
	eng := &gated{FakeEngine: newFake("held"), n: 0, reached: make(chan struct{}), release: make(chan struct{})}
	n := Start(t, Options{Engines: []engine.Engine{eng}, Capacity: 1, QueueSize: 1})
	p := newProxyPoster(t, n)
	guest := hex.EncodeToString(GuestKey.Public().(ed25519.PublicKey))

	var served sync.WaitGroup
	for range 2 { // one runs, one waits
		served.Go(func() {
			if resp, b := p.post(); resp.StatusCode != http.StatusOK {
				t.Errorf("a request ahead of the full queue: %d %s", resp.StatusCode, b)
			}
		})
	}
	<-eng.reached
	waitfor.Value(n.Proxy.Queued, func(q int) bool { return q == 1 })
	if q := n.Proxy.Queued(); q != 1 {
		t.Fatalf("%d requests queued, want 1", q)
	}
	held := n.Ledger.Held(guest)

	resp, b := p.post()
	wantRateLimited(t, "at the proxy", resp, b)
	if got := n.Ledger.Held(guest); got != held {
		t.Errorf("credit held after the 429: %d, want %d (the requests ahead only)", got, held)
	}
	app, err := http.Post(n.BaseURL+"/chat/completions", "application/json", strings.NewReader(hiBody))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(app.Body)
	app.Body.Close()
	wantRateLimited(t, "through the client", app, b)

	close(eng.release)
	served.Wait()
	if r := eng.Runs(); r != 2 {
		t.Errorf("the engine ran %d requests, want the 2 ahead of the full queue", r)
	}
	if got := n.Ledger.Held(guest); got != 0 {
		t.Errorf("credit still held after all answers: %d", got)
	}
}

// A request that waits in the queue past QueueTimeout is answered 429 with
// Retry-After, and gives back the credit it held while it waited.
func TestQueueWaitPastDeadlineAnswers429(t *testing.T) {
	eng := &gated{FakeEngine: newFake("held"), n: 0, reached: make(chan struct{}), release: make(chan struct{})}
	n := Start(t, Options{Engines: []engine.Engine{eng}, Capacity: 1, QueueTimeout: 50 * time.Millisecond})
	p := newProxyPoster(t, n)
	guest := hex.EncodeToString(GuestKey.Public().(ed25519.PublicKey))

	first := make(chan int)
	go func() {
		resp, _ := p.post()
		first <- resp.StatusCode
	}()
	<-eng.reached
	held := n.Ledger.Held(guest)
	resp, b := p.post() // waits behind the first, which never ends in time
	wantRateLimited(t, "past the wait deadline", resp, b)
	if got := n.Ledger.Held(guest); got != held {
		t.Errorf("credit held after the 429: %d, want %d (the first request only)", got, held)
	}
	if q := n.Proxy.Queued(); q != 0 {
		t.Errorf("%d requests still queued", q)
	}
	close(eng.release)
	if s := <-first; s != http.StatusOK {
		t.Errorf("the request served: %d", s)
	}
}

// The proxy's hellos (and vouchers, on the same streams) do not wait behind
// requests: with the worker's capacity taken and more requests queued, the
// proxy still re-reads the worker's hello and picks up its refreshed key
// bundle, and every request is then served.
func TestVoucherPostsAndHellosDoNotWaitBehindRequests(t *testing.T) {
	eng := &gated{FakeEngine: newFake("held"), n: 0, reached: make(chan struct{}), release: make(chan struct{})}
	// The worker makes a new bundle once half its TTL has passed, when the
	// proxy next asks for its hello (every 20ms).
	n := Start(t, Options{Engines: []engine.Engine{eng}, Capacity: 1, BundleTTL: 4 * time.Second, HelloInterval: 20 * time.Millisecond})
	p := newProxyPoster(t, n)
	old := n.Workers[0].KeyID()
	const queued = 10
	var served sync.WaitGroup
	for range 1 + queued {
		served.Go(func() {
			if resp, b := p.post(); resp.StatusCode != http.StatusOK {
				t.Errorf("a held request: %d %s", resp.StatusCode, b)
			}
		})
	}
	<-eng.reached
	waitfor.Value(n.Proxy.Queued, func(q int) bool { return q == queued })
	if !waitfor.Holds(func() bool {
		current := n.Workers[0].KeyID()
		_, listed := proxyDirectory(t, n)[current]
		return current != old && listed
	}) {
		t.Fatalf("the proxy did not re-read the hello of a worker busy with requests (%d queued; worker's key changed: %v; proxy refusals: %v)",
			n.Proxy.Queued(), n.Workers[0].KeyID() != old, n.Refusals("proxy"))
	}
	close(eng.release)
	served.Wait()
	if r := eng.Runs(); r != 1+queued {
		t.Errorf("the engine ran %d requests, want %d", r, 1+queued)
	}
}
