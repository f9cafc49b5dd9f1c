package proxy

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
)

// queueProxy is a proxy with workers of capacity 1 serving model "m", one
// per byte in names, as admit would have registered them.
func queueProxy(t *testing.T, cfg Config, names ...byte) (*Proxy, []*workerConn) {
	t.Helper()
	p, err := New(cfg, tls.Certificate{}, nil, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	var ws []*workerConn
	for _, c := range names {
		v := verifiedBundle(bytes.Repeat([]byte{c}, 32), ed25519.PublicKey(bytes.Repeat([]byte{c}, ed25519.PublicKeySize)), time.Now(), time.Hour)
		w := connected(p, v)
		w.name = string(c)
		ws = append(ws, w)
	}
	return p, ws
}

// sealedTo is a request for model "m" sealed to ws, as serveRequest builds it.
func sealedTo(p *Proxy, ws ...*workerConn) *request {
	env := &seal.Envelope{Header: seal.Header{Model: "m", PriceCap: price.Default}}
	for _, w := range ws {
		env.Keys = append(env.Keys, seal.WrappedKey{KeyID: w.verified.KeyID})
	}
	return &request{env: env, deadline: time.Now().Add(p.cfg.QueueTimeout)}
}

// slot is what acquire gave a request.
type slot struct {
	w   *workerConn
	err error
}

// wait starts acquire for q and returns where its answer will come.
func wait(ctx context.Context, p *Proxy, q *request) chan slot {
	c := make(chan slot, 1)
	go func() {
		w, err := p.acquire(ctx, q)
		c <- slot{w, err}
	}()
	synctest.Wait() // it has a slot or is queued
	return c
}

// got returns the slot c was given, or nil while it still waits.
func got(c chan slot) *slot {
	select {
	case s := <-c:
		return &s
	default:
		return nil
	}
}

// Requests wait for a free slot oldest first, each only for the workers it
// was sealed to; no worker is given more than its capacity.
func TestQueueIsFIFOWithinCandidateSets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		p, ws := queueProxy(t, Config{}, 'a', 'b')
		a, b := ws[0], ws[1]
		first, second := got(wait(ctx, p, sealedTo(p, a, b))), got(wait(ctx, p, sealedTo(p, a, b)))
		if first == nil || second == nil || first.w == second.w {
			t.Fatalf("two requests, two free workers: %v, %v", first, second)
		}
		onlyA := wait(ctx, p, sealedTo(p, a))
		onlyB := wait(ctx, p, sealedTo(p, b))
		either := wait(ctx, p, sealedTo(p, a, b))
		lastA := wait(ctx, p, sealedTo(p, a))
		if q := p.Queued(); q != 4 {
			t.Fatalf("%d queued, want 4", q)
		}
		step := func(freed *workerConn, want chan slot, name string) {
			t.Helper()
			p.release(freed)
			synctest.Wait()
			if s := got(want); s == nil || s.err != nil || s.w != freed {
				t.Fatalf("%s freed: %s got %+v, want its slot", freed.name, name, s)
			}
			for _, w := range ws {
				if w.inflight > w.hello.Capacity {
					t.Fatalf("%s has %d in flight, over its capacity", w.name, w.inflight)
				}
			}
		}
		step(b, onlyB, "the request sealed to b alone") // the older one sealed to a alone cannot take it
		step(a, onlyA, "the oldest request sealed to a")
		step(b, either, "the oldest request that may go to b")
		step(a, lastA, "the last request")
		if q := p.Queued(); q != 0 {
			t.Errorf("%d still queued", q)
		}
	})
}

// A request waits no longer than its deadline, one beyond the queue's size
// is turned away at once, and one whose client went away leaves the queue;
// none of them holds a slot.
func TestQueueBoundedInSizeAndTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, ws := queueProxy(t, Config{QueueSize: 1, QueueTimeout: 5 * time.Second}, 'a')
		a := ws[0]
		ctx := context.Background()
		if s := got(wait(ctx, p, sealedTo(p, a))); s == nil || s.w != a {
			t.Fatalf("the free slot: %+v", s)
		}
		start := time.Now()
		waiting := wait(ctx, p, sealedTo(p, a))
		if s := got(wait(ctx, p, sealedTo(p, a))); s == nil || !errors.Is(s.err, errQueueFull) {
			t.Errorf("beyond the queue's size: %+v, want errQueueFull", s)
		}
		s := <-waiting
		if !errors.Is(s.err, errQueueTimeout) || time.Since(start) != 5*time.Second {
			t.Errorf("after %v: %+v, want errQueueTimeout after QueueTimeout", time.Since(start), s)
		}
		gone, hangUp := context.WithCancel(ctx)
		left := wait(gone, p, sealedTo(p, a))
		hangUp()
		if s := <-left; !errors.Is(s.err, context.Canceled) {
			t.Errorf("a client that went away: %+v", s)
		}
		if q, n := p.Queued(), a.inflight; q != 0 || n != 1 {
			t.Errorf("%d queued, %d in flight; want 0 and the first request's 1", q, n)
		}
	})
}

// A request that has failed on a worker waits for another, keeping its
// place ahead of later requests; when none is left, acquire says so rather
// than waiting.
func TestQueueRetrySkipsTheFailedWorker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, ws := queueProxy(t, Config{}, 'a', 'b')
		ctx := context.Background()
		q := sealedTo(p, ws...)
		s := got(wait(ctx, p, q))
		other := got(wait(ctx, p, sealedTo(p, ws...)))
		later := wait(ctx, p, sealedTo(p, ws...))
		latest := wait(ctx, p, sealedTo(p, ws...))
		p.release(s.w) // q failed on it: the oldest waiting takes the slot
		synctest.Wait()
		if l := got(later); l == nil || l.w != s.w {
			t.Errorf("the oldest waiting request got %+v, want the failed worker's slot", l)
		}
		q.skip = append(q.skip, s.w)
		retry := wait(ctx, p, q)
		p.release(other.w)
		synctest.Wait()
		if r := got(retry); r == nil || r.w != other.w {
			t.Errorf("the retry got %+v, want the other worker's slot, ahead of later requests", r)
		}
		if got(latest) != nil {
			t.Error("a later request went ahead of the retry")
		}
		q.skip = ws
		if r := got(wait(ctx, p, q)); r == nil || !errors.Is(r.err, errNoServer) && !errors.Is(r.err, errNotConnected) {
			t.Errorf("every worker failed it: %+v, want no candidate", r)
		}
	})
}
