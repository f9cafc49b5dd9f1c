package adversary

import (
	"context"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/internal/testnet"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
)

const model = enginetest.DefaultModel

// gated is an engine that, after emitting `after` objects, waits for open
// to be closed before it goes on, ignoring its context meanwhile, so that
// tests can hold requests in flight.
type gated struct {
	*enginetest.FakeEngine
	after   int
	open    chan struct{}
	reached chan struct{} // gets a value each time a run reaches the gate
	once    sync.Once
}

// newGated returns a gated engine whose gate opens at the latest when the
// test ends.
func newGated(t *testing.T, after int) *gated {
	g := &gated{FakeEngine: &enginetest.FakeEngine{}, after: after, open: make(chan struct{}), reached: make(chan struct{}, 100)}
	t.Cleanup(g.release)
	return g
}

// release opens the gate.
func (g *gated) release() {
	g.once.Do(func() { close(g.open) })
}

func (g *gated) Run(ctx context.Context, req *engine.Request, emit engine.Emit) (price.Usage, error) {
	n := 0
	wait := func() {
		g.reached <- struct{}{}
		<-g.open
	}
	if g.after == 0 {
		wait()
	}
	return g.FakeEngine.Run(ctx, req, func(b []byte) error {
		err := emit(b)
		if n++; n == g.after {
			wait()
		}
		return err
	})
}

// start is a network whose proxy serves a malicious client's account too
// (without payment channels, a proxy serves the keys it was told to).
func start(t *testing.T, opts testnet.Options) (*testnet.Net, *Client, []*attest.Verified) {
	t.Helper()
	c := NewClient("")
	opts.Clients = append(opts.Clients, c.Account())
	n := testnet.Start(t, opts)
	c.ProxyURL, c.Proxy = n.ProxyURL, n.ProxyKey
	return n, c, workers(t, n)
}

func hexID(v *attest.Verified) string { return hex.EncodeToString(v.KeyID[:]) }

// fakeVerified is a worker that exists nowhere, with a key of the default
// KEM, to seal envelopes of the size real ones have.
func fakeVerified(t *testing.T) *attest.Verified {
	k, err := seal.GenerateKey(seal.KEMMLKEM768X25519)
	if err != nil {
		t.Fatal(err)
	}
	return &attest.Verified{KeyID: [32]byte{1}, Bundle: &attest.Bundle{HPKEKey: k.PublicKey()}}
}

func workers(t *testing.T, n *testnet.Net) []*attest.Verified {
	t.Helper()
	v, err := n.Client.Directory(context.Background())
	if err != nil || len(v) == 0 {
		t.Fatalf("directory: %d workers, %v", len(v), err)
	}
	return v
}

func post(t *testing.T, c *Client, raw []byte) *Response {
	t.Helper()
	r, err := c.Post(raw)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func requests(n *testnet.Net, account string) func() accounts.Account {
	return func() accounts.Account { return n.Ledger.Client(account) }
}

// Finding 1: a new envelope reusing a request id (with another expiry, so
// another header hash) used to be served, relayed and not booked, while the
// worker was paid again. The proxy refuses it before routing.
func TestReusedRequestIDIsRefused(t *testing.T) {
	eng := &enginetest.FakeEngine{}
	n, c, ws := start(t, testnet.Options{Engines: []engine.Engine{eng}})
	h := c.Header(model)
	first, _, err := c.Seal(h, Chat(model, "one"), ws[0])
	if err != nil {
		t.Fatal(err)
	}
	if r := post(t, c, first); r.Status != http.StatusOK {
		t.Fatalf("first request: %d %s", r.Status, r.Body)
	}
	h.Expires += 30
	again, _, err := c.Seal(h, Chat(model, "two"), ws[0])
	if err != nil {
		t.Fatal(err)
	}
	r := post(t, c, again)
	if r.Status != http.StatusConflict || r.Error().Code != "duplicate_request" {
		t.Errorf("reused request id: %d %s, want 409 duplicate_request", r.Status, r.Body)
	}
	if runs := eng.Runs(); runs != 1 {
		t.Errorf("the engine ran %d times for one request id", runs)
	}
	a := waitfor.Value(requests(n, c.Account()), func(a accounts.Account) bool { return a.Requests == 1 })
	if a.Requests != 1 || n.Ledger.Worker(hexID(ws[0])).Requests != 1 {
		t.Errorf("booked %+v for the client, %+v for the worker; want one request each", a, n.Ledger.Worker(hexID(ws[0])))
	}
}

// Finding 8: one envelope sealed to two workers and posted twice used to be
// served twice and booked once. The second copy is refused, whichever
// worker it could reach.
func TestFanOutReplayIsServedOnce(t *testing.T) {
	e1, e2 := &enginetest.FakeEngine{}, &enginetest.FakeEngine{}
	n, c, ws := start(t, testnet.Options{Engines: []engine.Engine{e1, e2}})
	if len(ws) != 2 {
		t.Fatalf("%d workers", len(ws))
	}
	raw, _, err := c.Seal(c.Header(model), Chat(model, "hi"), ws...)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	status := make([]int, 4)
	for i := range status {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := c.Post(raw); err == nil {
				status[i] = r.Status
			}
		}()
	}
	wg.Wait()
	ok := 0
	for _, s := range status {
		switch s {
		case http.StatusOK:
			ok++
		case http.StatusConflict:
		default:
			t.Errorf("a copy got %d", s)
		}
	}
	if ok != 1 || e1.Runs()+e2.Runs() != 1 {
		t.Errorf("four copies of one envelope: %d served, engines ran %d times; want 1", ok, e1.Runs()+e2.Runs())
	}
	if a := waitfor.Value(requests(n, c.Account()), func(a accounts.Account) bool { return a.Requests == 1 }); a.Requests != 1 {
		t.Errorf("booked %+v", a)
	}
}

// Finding 2: a proxy without payment channels used to serve any fresh key
// on credit. It serves only the keys it was told to.
func TestUnknownClientIsNotServedOnCredit(t *testing.T) {
	eng := &enginetest.FakeEngine{}
	n := testnet.Start(t, testnet.Options{Engines: []engine.Engine{eng}})
	stranger := NewClient(n.ProxyURL)
	stranger.Proxy = n.ProxyKey
	raw, _, err := stranger.Seal(stranger.Header(model), Chat(model, "free?"), workers(t, n)...)
	if err != nil {
		t.Fatal(err)
	}
	r := post(t, stranger, raw)
	if r.Status != http.StatusForbidden || r.Error().Code != "client_not_allowed" {
		t.Errorf("a key the proxy was not told to serve: %d %s, want 403 client_not_allowed", r.Status, r.Body)
	}
	if eng.Runs() != 0 {
		t.Error("the engine ran a request of an unknown client")
	}
}

// Finding 2: requests in flight together used to pass the credit check each
// on its own, so concurrency overshot the limit. What each may cost is held
// at admission: with credit for three, three are served and the rest refused.
func TestConcurrentRequestsCannotOvershootCredit(t *testing.T) {
	eng := newGated(t, 0)
	probe := NewClient("")
	probe.Proxy = [32]byte{1}
	sample, _, err := probe.Seal(probe.Header(model), Chat(model, "x"), fakeVerified(t))
	if err != nil {
		t.Fatal(err)
	}
	env, _ := seal.ParseEnvelope(sample)
	hold := env.MaxCost()
	n, c, ws := start(t, testnet.Options{Engines: []engine.Engine{eng}, CreditLimit: 3*hold + hold/2, Capacity: 16})

	const total = 12
	results := make(chan int, total)
	for range total {
		raw, _, err := c.Seal(c.Header(model), Chat(model, "x"), ws[0])
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			r, err := c.Post(raw)
			if err != nil {
				results <- 0
				return
			}
			results <- r.Status
		}()
	}
	count := map[int]int{}
	next := func() {
		select {
		case s := <-results:
			count[s]++
		case <-time.After(5 * time.Second):
			t.Fatalf("statuses so far %v; the rest are stuck", count)
		}
	}
	// The refused answer at once; the admitted wait at the engine's gate.
	for range total - 3 {
		next()
	}
	for range 3 {
		select {
		case <-eng.reached:
		case <-time.After(5 * time.Second):
			t.Fatalf("statuses so far %v; fewer than three requests reached the engine", count)
		}
	}
	eng.release()
	for range 3 {
		next()
	}
	if count[http.StatusOK] != 3 || count[http.StatusPaymentRequired] != total-3 {
		t.Errorf("statuses %v: want 3 × 200 and %d × 402 with credit for three requests", count, total-3)
	}
	if a := waitfor.Value(requests(n, c.Account()), func(a accounts.Account) bool { return a.Requests == 3 }); a.Requests != 3 {
		t.Errorf("booked %+v", a)
	}
}

// Finding 4: a client that hung up before the receipt used to be served
// free: the worker's request died with the client's. The proxy drains the
// answer and books its receipt.
func TestHangingUpBeforeTheReceiptIsBooked(t *testing.T) {
	eng := newGated(t, 1)
	n, c, ws := start(t, testnet.Options{Engines: []engine.Engine{eng}})
	h := c.Header(model)
	h.Stream = true
	raw, _, err := c.Seal(h, []byte(`{"model":"`+model+`","stream":true,"messages":[{"role":"user","content":"hi"}]}`), ws[0])
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		status, err := c.PostAndHangUp(raw)
		if err == nil && status != http.StatusOK {
			err = errors.New(http.StatusText(status))
		}
		done <- err
	}()
	<-eng.reached
	if err := <-done; err != nil {
		t.Fatalf("the client did not get the first record: %v", err)
	}
	eng.release() // the engine finishes after the client has gone
	a := waitfor.Value(requests(n, c.Account()), func(a accounts.Account) bool { return a.Requests == 1 })
	if a.Requests != 1 || a.Amount == 0 {
		t.Errorf("a client that hung up before its receipt: booked %+v, want the answer", a)
	}
}
