package proxy

import (
	"context"
	"errors"
	"slices"
	"time"
)

// Admission: a worker runs at most its capacity (its hello's) of this
// proxy's requests at once. A request that finds no free slot among its
// candidates waits in its model's queue, oldest first, until one of them
// frees a slot (dispatch), its wait deadline passes (QueueTimeout, or the
// envelope's expiry if sooner) or its client goes away; a full queue turns
// it away at once. Both are answered 429 with Retry-After, which OpenAI's
// SDKs retry. All of it is guarded by Proxy.mu.

// DefaultQueueSize is how many requests may wait per model by default.
const DefaultQueueSize = 1024

// DefaultQueueTimeout is how long a request waits for a slot by default.
const DefaultQueueTimeout = 30 * time.Second

// Reasons acquire gives no slot.
var (
	errNotConnected = errors.New("none of the request's workers is connected to this proxy")
	errNoServer     = errors.New("no connected worker serves the model within the price limit")
	errQueueFull    = errors.New("the queue for the model is full")
	errQueueTimeout = errors.New("no worker had a free slot before the wait deadline")
	errClosing      = errors.New("the proxy is shutting down")
)

// waiter is a request waiting in its model's queue.
type waiter struct {
	q       *request
	granted chan *workerConn // the worker whose slot it now holds; buffered
}

// acquire takes a slot for q on the least loaded of its candidates (not in
// q.skip) that has one free, or waits in the queue of q's model for one.
// The caller gives the slot back with release.
func (p *Proxy) acquire(ctx context.Context, q *request) (*workerConn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errClosing
	}
	retry := q.seq != 0 // a retry keeps its place, even in a full queue
	if !retry {
		p.arrivals++
		q.seq = p.arrivals
	}
	cands, known := p.candidates(q.env, time.Now())
	cands = slices.DeleteFunc(cands, func(w *workerConn) bool { return slices.Contains(q.skip, w) })
	if len(cands) == 0 {
		p.mu.Unlock()
		if known {
			return nil, errNoServer
		}
		return nil, errNotConnected
	}
	var best *workerConn
	for _, w := range cands {
		if w.inflight < w.hello.Capacity && (best == nil || less(w, best)) {
			best = w
		}
	}
	if best != nil {
		best.inflight++
		p.mu.Unlock()
		return best, nil
	}
	model := q.env.Header.Model
	queue := p.queues[model]
	if !retry && len(queue) >= p.cfg.QueueSize {
		p.mu.Unlock()
		return nil, errQueueFull
	}
	wt := &waiter{q: q, granted: make(chan *workerConn, 1)}
	i, _ := slices.BinarySearchFunc(queue, q.seq, func(o *waiter, seq uint64) int { return cmpSeq(o.q.seq, seq) })
	p.queues[model] = slices.Insert(queue, i, wt)
	p.mu.Unlock()

	queued := p.metrics.Queue()
	queued.Enter()
	start := time.Now()
	timer := time.NewTimer(time.Until(q.deadline))
	defer timer.Stop()
	var err error
	select {
	case w := <-wt.granted:
		queued.Leave(time.Since(start), "admitted")
		return w, nil
	case <-timer.C:
		err = errQueueTimeout
		queued.Leave(time.Since(start), "timeout")
	case <-ctx.Done():
		err = ctx.Err()
		queued.Leave(time.Since(start), "gone")
	case <-p.stopped.Done():
		err = errClosing
		queued.Leave(time.Since(start), "gone")
	}
	p.mu.Lock()
	queue = p.queues[model]
	if i := slices.Index(queue, wt); i >= 0 {
		p.queues[model] = slices.Delete(queue, i, i+1)
		if len(p.queues[model]) == 0 {
			delete(p.queues, model)
		}
		wt = nil
	}
	p.mu.Unlock()
	if wt != nil { // granted a slot as it gave up: pass it on
		p.release(<-wt.granted)
	}
	return nil, err
}

func cmpSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// less reports whether a is less loaded than b: fewer requests per unit of
// capacity, then a shorter time to first record. p.mu must be held.
func less(a, b *workerConn) bool {
	la, lb := a.load(), b.load()
	if la != lb {
		return la < lb
	}
	a.mu.Lock()
	lta := a.latency
	a.mu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	return lta < b.latency
}

// release gives back w's slot, to the oldest request waiting for it.
func (p *Proxy) release(w *workerConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w.inflight--
	p.dispatch(w)
}

// dispatch hands w's free slots to the oldest waiting requests that may go
// to w (sealed to its keys, for a model it serves within their price cap,
// not failed on it already), oldest first across all of w's models. It is
// called whenever w may have a slot for a waiter: a request on it ended, it
// was admitted, or its hello changed. p.mu must be held.
func (p *Proxy) dispatch(w *workerConn) {
	now := time.Now()
	for w.inflight < w.hello.Capacity {
		var next *waiter
		for model := range w.models {
			for _, wt := range p.queues[model] {
				if next != nil && wt.q.seq > next.q.seq {
					break
				}
				if p.fits(wt.q, w, now) {
					next = wt
					break
				}
			}
		}
		if next == nil {
			return
		}
		model := next.q.env.Header.Model
		queue := p.queues[model]
		i := slices.Index(queue, next)
		p.queues[model] = slices.Delete(queue, i, i+1)
		if len(p.queues[model]) == 0 {
			delete(p.queues, model)
		}
		w.inflight++
		next.granted <- w
	}
}

// fits reports whether q may go to w now. p.mu must be held.
func (p *Proxy) fits(q *request, w *workerConn, now time.Time) bool {
	if slices.Contains(q.skip, w) {
		return false
	}
	cands, _ := p.candidates(q.env, now)
	return slices.Contains(cands, w)
}

// Queued reports how many requests are waiting for a slot, over all models.
func (p *Proxy) Queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, q := range p.queues {
		n += len(q)
	}
	return n
}
