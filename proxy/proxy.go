// Package proxy runs the proxy role: workers dial in and are admitted on
// their attestation evidence; clients send sealed envelopes, which the proxy
// routes to the least loaded acceptable worker, relays without being able to
// read, and meters from the worker's signed receipt.
package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/metrics"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
)

// Config configures a proxy.
type Config struct {
	FeeBPS uint64 `json:"fee_bps"` // the proxy's share of each cost, in 1/10000
	// CreditLimit bounds what a client may leave unpaid, with what its
	// requests in flight may cost, in nanoTON. A client paying by channel
	// gets min(CreditLimit, its deposit not yet covered by vouchers).
	// 0: DefaultCreditLimit.
	CreditLimit uint64 `json:"credit_limit"`
	// Clients are the account keys (hex) a proxy without payment channels
	// serves, each up to CreditLimit; it refuses every other key. A proxy
	// paid by channels serves any client with an open channel.
	Clients []string `json:"clients,omitempty"`
	// DrainTimeout bounds how long the proxy keeps reading a worker's
	// answer for its receipt after the client has gone away. 0:
	// DefaultDrainTimeout.
	DrainTimeout time.Duration `json:"drain_timeout,omitempty"`
	// WorkerFee is what a worker earns per token, in nanoTON, with the
	// same prompt/cached/completion multipliers as the price (the root
	// contract's worker_fee). 0: the cost less FeeBPS.
	WorkerFee uint64 `json:"worker_fee"`
	// ClaimThreshold is the unclaimed amount on a client's channel at which
	// the proxy claims it on chain; it also claims everything on Close.
	ClaimThreshold uint64 `json:"claim_threshold"`
	// HelloInterval is how often the proxy re-reads a connected worker's
	// hello, to pick up refreshed evidence. 0: DefaultHelloInterval.
	HelloInterval time.Duration `json:"hello_interval,omitempty"`
	// QueueSize is how many requests may wait per model for a worker with
	// a free slot (a worker runs at most its capacity of this proxy's
	// requests at once); one more is answered 429 with Retry-After at once.
	// 0: DefaultQueueSize; negative: no queue.
	QueueSize int `json:"queue_size,omitempty"`
	// QueueTimeout is the longest a request waits in the queue (never past
	// its envelope's expiry) before it is answered 429 with Retry-After.
	// 0: DefaultQueueTimeout.
	QueueTimeout time.Duration `json:"queue_timeout,omitempty"`
}

// DefaultHelloInterval is how often a worker's hello is re-read by default.
const DefaultHelloInterval = time.Minute

// DefaultCreditLimit is 1 TON.
const DefaultCreditLimit = 1_000_000_000

// DefaultDrainTimeout is how long an answer is drained after its client left.
const DefaultDrainTimeout = 10 * time.Minute

// DefaultClaimThreshold is 1 TON.
const DefaultClaimThreshold = 1_000_000_000

// Proxy routes sealed requests from clients to workers.
type Proxy struct {
	cfg    Config
	cert   tls.Certificate
	pin    [32]byte // the hash of cert's key, which envelopes must name
	attest *attest.Cache
	ledger *accounts.File
	log    *slog.Logger

	mu      sync.Mutex
	workers map[[32]byte]*workerConn // by every key ID in workerConn.keys
	conns   map[net.Conn]struct{}
	closed  bool
	serving sync.WaitGroup  // requests being served; none starts once closed
	stopped context.Context // done once Close starts
	stop    context.CancelFunc
	// queues hold the requests waiting for a slot, by model, oldest first
	// (see acquire); arrivals numbers them.
	queues   map[string][]*waiter
	arrivals uint64

	money   *money
	pending *Payments      // WithPayments' choice, set up once every option is applied
	metrics *metrics.Proxy // nil: none kept
}

// New returns a proxy that admits workers whose evidence passes checker and
// books answers in ledger, with what opts choose (WithPayments).
func New(cfg Config, cert tls.Certificate, checker *attest.Cache, ledger *accounts.File, log *slog.Logger, opts ...Option) (*Proxy, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.ClaimThreshold == 0 {
		cfg.ClaimThreshold = DefaultClaimThreshold
	}
	if cfg.HelloInterval <= 0 {
		cfg.HelloInterval = DefaultHelloInterval
	}
	if cfg.CreditLimit == 0 {
		cfg.CreditLimit = DefaultCreditLimit
	}
	if cfg.DrainTimeout <= 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	switch {
	case cfg.QueueSize == 0:
		cfg.QueueSize = DefaultQueueSize
	case cfg.QueueSize < 0:
		cfg.QueueSize = 0
	}
	if cfg.QueueTimeout <= 0 {
		cfg.QueueTimeout = DefaultQueueTimeout
	}
	if cfg.FeeBPS > price.One {
		cfg.FeeBPS = price.One
	}
	pin, _ := identity.CertKeyHash(cert) // zero for no certificate: no envelope names it
	p := &Proxy{cfg: cfg, cert: cert, pin: pin, attest: checker, ledger: ledger, log: log,
		workers: map[[32]byte]*workerConn{}, conns: map[net.Conn]struct{}{}, queues: map[string][]*waiter{}}
	p.stopped, p.stop = context.WithCancel(context.Background())
	for _, o := range opts {
		if err := o(p); err != nil {
			p.stop()
			return nil, err
		}
	}
	// Payments start after every option, so that their first voucher
	// already meets the metrics.
	if p.pending != nil {
		if err := p.payWith(p.pending); err != nil {
			p.stop()
			return nil, err
		}
	}
	return p, nil
}

// workerConn is one connected, admitted worker.
type workerConn struct {
	name     string
	cc       *http2.ClientConn
	conn     net.Conn
	verified *attest.Verified
	hello    wire.Hello
	models   map[string]bool
	// keys are the key IDs routed to this connection, with the expiry of
	// each bundle: the current one and superseded ones of the same keys,
	// which clients may still seal to (at most wire.MaxPreviousKeys).
	// Guarded by Proxy.mu.
	keys map[[32]byte]time.Time
	// inflight counts the requests relayed to it now, never more than
	// hello.Capacity (see acquire). Guarded by Proxy.mu.
	inflight int

	mu      sync.Mutex
	latency time.Duration // moving average of time to first record
}

// load is in-flight requests per unit of capacity. Proxy.mu must be held.
func (w *workerConn) load() float64 {
	return float64(w.inflight) / float64(max(1, w.hello.Capacity))
}

// ServeWorkers accepts worker connections on ln until it is closed.
func (p *Proxy) ServeWorkers(ln net.Listener) error {
	cfg := &tls.Config{
		Certificates: []tls.Certificate{p.cert},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{wire.ALPN},
		MinVersion:   tls.VersionTLS13,
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("proxy: accepting workers: %w", err)
		}
		go p.admit(tls.Server(c, cfg))
	}
}

// admit handshakes with a worker, checks its evidence, and keeps it routable
// until the connection fails.
func (p *Proxy) admit(conn *tls.Conn) {
	log := p.log.With("worker_addr", conn.RemoteAddr().String())
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := conn.HandshakeContext(ctx); err != nil {
		log.Warn("worker TLS handshake failed", "err", err)
		conn.Close()
		return
	}
	if !p.track(conn) {
		conn.Close()
		return
	}
	defer p.untrack(conn)
	// Strict: should the worker allow fewer streams than its capacity and
	// the hellos and vouchers need, a stream waits for one to end rather
	// than failing with "client conn not usable".
	t := &http2.Transport{ReadIdleTimeout: 15 * time.Second, PingTimeout: 10 * time.Second, StrictMaxConcurrentStreams: true}
	cc, err := t.NewClientConn(conn)
	if err != nil {
		log.Warn("worker HTTP/2 setup failed", "err", err)
		conn.Close()
		return
	}
	w := &workerConn{cc: cc, conn: conn}
	if err := p.hello(ctx, w); err != nil {
		log.Warn("worker refused", "err", err)
		cc.Close()
		return
	}
	id := w.verified.KeyID
	log = log.With("worker", w.name, "key_id", hex.EncodeToString(id[:8]))
	w.keys = map[[32]byte]time.Time{id: bundleExpiry(w.verified)}
	p.mu.Lock()
	old := p.workers[id]
	p.workers[id] = w
	p.dispatch(w) // requests queued for its keys
	p.mu.Unlock()
	if old != nil {
		old.cc.Close() // the newest connection of a bundle wins; closed outside the lock
	}
	log.Info("worker admitted", "kind", w.verified.Claims.Kind, "models", w.hello.Models, "capacity", w.hello.Capacity)
	p.metrics.WorkerAdmitted(w.verified.Claims.Kind)
	p.payoutFor(w)

	// Re-read the hello now and then: the worker refreshes its evidence
	// before its bundle expires. A dead link is noticed by HTTP/2 pings
	// (ReadIdleTimeout above).
	tick := time.NewTicker(min(time.Second, p.cfg.HelloInterval))
	defer tick.Stop()
	next := time.Now().Add(p.cfg.HelloInterval)
	for range tick.C {
		if st := cc.State(); st.Closed || st.Closing {
			break
		}
		if time.Now().Before(next) {
			continue
		}
		hctx, hcancel := context.WithTimeout(context.Background(), 15*time.Second)
		nw := &workerConn{cc: cc, conn: conn}
		err := p.hello(hctx, nw)
		hcancel()
		payout := w.payout()
		if err == nil {
			err = p.update(w, nw, log)
		}
		if err != nil {
			log.Warn("dropping worker", "err", err)
			cc.Close()
			break
		}
		if w.payout() != payout {
			p.payoutFor(w) // paid to a new wallet from now on
		}
		next = time.Now().Add(p.cfg.HelloInterval)
	}
	p.mu.Lock()
	for id := range w.keys {
		if p.workers[id] == w {
			delete(p.workers, id)
		}
	}
	p.mu.Unlock()
	log.Info("worker disconnected")
}

// ErrKeysChanged refuses a connected worker whose new key bundle carries
// other keys than the one it was admitted with: that is a new worker, to be
// admitted on a new connection.
var ErrKeysChanged = errors.New("worker changed its keys")

// update takes the re-read hello nw of the connected worker w. Refreshed
// evidence for the same bundle, or a new bundle of the same keys (new
// expiry), replaces w's in place: requests sealed to the superseded key ID
// keep reaching w until that bundle expires, and streams in flight go on.
func (p *Proxy) update(w *workerConn, nw *workerConn, log *slog.Logger) error {
	var other *workerConn
	defer func() {
		if other != nil {
			other.cc.Close() // outside the lock: closing a TLS connection may block
		}
	}()
	p.mu.Lock() // candidates reads hello, models and keys under p.mu
	defer p.mu.Unlock()
	w.mu.Lock()
	old := w.verified
	w.mu.Unlock()
	id := nw.verified.KeyID
	if id != old.KeyID {
		if !sameKeys(old.Bundle, nw.verified.Bundle) {
			return fmt.Errorf("%w: bundle %x replaces %x", ErrKeysChanged, id[:8], old.KeyID[:8])
		}
		if o := p.workers[id]; o != nil && o != w {
			other = o // as on admission: the newest connection of a bundle wins
		}
		w.keys[id] = bundleExpiry(nw.verified)
		p.workers[id] = w
		log.Info("worker refreshed its key bundle", "key_id", hex.EncodeToString(id[:8]), "previous", hex.EncodeToString(old.KeyID[:8]))
	}
	p.pruneKeys(w, id, time.Now())
	w.mu.Lock()
	w.verified, w.hello, w.models = nw.verified, nw.hello, nw.models
	w.mu.Unlock()
	p.dispatch(w) // it may serve more now
	return nil
}

// pruneKeys drops from w (and from routing) the superseded key IDs whose
// bundles have expired, and the oldest beyond wire.MaxPreviousKeys, as the
// worker does. p.mu must be held.
func (p *Proxy) pruneKeys(w *workerConn, current [32]byte, now time.Time) {
	drop := func(k [32]byte) {
		delete(w.keys, k)
		if p.workers[k] == w {
			delete(p.workers, k)
		}
	}
	var past [][32]byte
	for k, exp := range w.keys {
		switch {
		case k == current:
		case now.Before(exp):
			past = append(past, k)
		default:
			drop(k)
		}
	}
	slices.SortFunc(past, func(a, b [32]byte) int { return w.keys[b].Compare(w.keys[a]) }) // latest expiry first
	for _, k := range past[min(len(past), wire.MaxPreviousKeys):] {
		drop(k)
	}
}

// sameKeys reports whether a and b carry the same HPKE, signing and TLS keys.
func sameKeys(a, b *attest.Bundle) bool {
	return bytes.Equal(a.HPKEKey, b.HPKEKey) && a.SigningKey.Equal(b.SigningKey) && a.TLSKeyHash == b.TLSKeyHash
}

// bundleExpiry is when v's bundle expires: until then the worker accepts
// requests sealed to it.
func bundleExpiry(v *attest.Verified) time.Time { return time.Unix(v.Bundle.Expires, 0) }

// hello asks the worker who it is and verifies the answer.
func (p *Proxy) hello(ctx context.Context, w *workerConn) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://worker"+wire.PathHello, nil)
	resp, err := w.cc.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	defer resp.Body.Close()
	var h wire.Hello
	if err := json.NewDecoder(io.LimitReader(resp.Body, wire.MaxHelloSize)).Decode(&h); err != nil {
		return fmt.Errorf("hello: %w", err)
	}
	v, err := p.attest.Check(h.Evidence)
	if err != nil {
		return fmt.Errorf("evidence: %w", err)
	}
	// The TLS key the worker connected with must be the one its bundle attests.
	peer := w.conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(peer) == 0 || identity.KeyHash(peer[0]) != v.Bundle.TLSKeyHash {
		return errors.New("worker's TLS key is not the one in its attested bundle")
	}
	served := map[string]bool{}
	for _, m := range v.Bundle.Models {
		served[m.Name] = true
	}
	w.models = map[string]bool{}
	for _, m := range h.Models {
		if !served[m] {
			return fmt.Errorf("worker announces model %q that its bundle does not attest", m)
		}
		w.models[m] = true
	}
	if h.Capacity <= 0 {
		h.Capacity = 1
	}
	w.name, w.hello, w.verified = h.Name, h, v
	return nil
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

// Close refuses new requests, cuts the answers in flight and waits for
// their handlers (each books what its receipt proves), delivers the last
// vouchers to workers, claims what clients' vouchers cover on chain, and
// drops every worker connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	again := p.closed
	p.closed = true
	p.mu.Unlock()
	if again {
		return nil // settled by the first Close
	}
	p.stop()
	p.serving.Wait()
	err := p.settle()
	p.mu.Lock()
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close() // outside the lock: closing a TLS connection may block
	}
	return err
}

// enter counts a request being served, unless the proxy is closing.
func (p *Proxy) enter() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.serving.Add(1)
	return true
}

// Workers reports how many workers are admitted.
func (p *Proxy) Workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for id, w := range p.workers {
		if id == w.verified.KeyID {
			n++
		}
	}
	return n
}

// Handler serves clients: the directory of workers and sealed requests.
func (p *Proxy) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathDirectory, p.serveDirectory)
	mux.Handle("POST "+wire.PathRequests, p.metrics.Requests(http.HandlerFunc(p.serveRequest)))
	mux.HandleFunc("POST "+wire.PathVouchers, p.serveVoucher)
	return mux
}

func (p *Proxy) serveDirectory(rw http.ResponseWriter, r *http.Request) {
	d := wire.Directory{Payee: p.payeeInfo()}
	p.mu.Lock()
	for id, w := range p.workers {
		if id != w.verified.KeyID {
			continue // a superseded bundle: the directory shows the current one
		}
		d.Workers = append(d.Workers, wire.WorkerInfo{Evidence: w.hello.Evidence, Price: w.hello.Price,
			Capacity: w.hello.Capacity, InFlight: w.inflight, Models: w.hello.Models})
	}
	p.mu.Unlock()
	rw.Header().Set("Content-Type", "application/json")
	json.NewEncoder(rw).Encode(d)
}

// candidates returns the admitted workers among the envelope's recipients
// that serve its model within its price cap, and whether any recipient is
// connected at all. p.mu must be held.
func (p *Proxy) candidates(env *seal.Envelope, now time.Time) (list []*workerConn, known bool) {
	for _, k := range env.Keys {
		w := p.workers[k.KeyID]
		if w == nil || slices.Contains(list, w) {
			continue
		}
		if k.KeyID != w.verified.KeyID && !now.Before(w.keys[k.KeyID]) {
			continue // a superseded bundle that has expired: the worker refuses it too
		}
		known = true
		if w.models[env.Header.Model] && w.hello.Price.Within(env.Header.PriceCap) {
			list = append(list, w)
		}
	}
	return list, known
}

// serveRequest routes one sealed request. Before anything reaches a worker
// the envelope's signature is checked and its request is admitted: its id
// taken (a reused id, a replay or a fan-out copy is refused) and what it may
// cost held against the client's credit. It then waits, holding that
// credit, for a slot on one of its workers (acquire): a queue full or a
// wait too long is a 429 with Retry-After, and gives the credit back. Until
// a worker has streamed something, a failing worker is replaced by the next
// candidate with a free slot; after that, a failure ends the stream with an
// error record and no receipt.
func (p *Proxy) serveRequest(rw http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, seal.MaxEnvelope))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			api.WriteError(rw, api.Errorf(http.StatusRequestEntityTooLarge, api.TypeInvalidRequest, "too_large", "sealed request is over %d bytes", seal.MaxEnvelope))
			return
		}
		api.WriteError(rw, api.Errorf(http.StatusBadRequest, api.TypeInvalidRequest, "read_failed", "reading request: %v", err))
		return
	}
	env, err := seal.ParseEnvelope(raw)
	if err != nil {
		api.WriteError(rw, api.Errorf(http.StatusBadRequest, api.TypeInvalidRequest, "bad_envelope", "%v", err))
		return
	}
	// An envelope names the one proxy that may relay it (and bill it).
	if env.Header.Proxy != p.pin {
		api.WriteError(rw, api.Errorf(http.StatusMisdirectedRequest, api.TypeInvalidRequest, "misdirected_request", "the sealed request is bound to proxy %x, not this one", env.Header.Proxy[:8]))
		return
	}
	now := time.Now()
	switch {
	case now.Unix() >= env.Header.Expires:
		api.WriteError(rw, api.Errorf(http.StatusBadRequest, api.TypeInvalidRequest, "expired", "sealed request has expired"))
		return
	case env.Header.Expires > now.Add(seal.DefaultMaxLifetime).Unix():
		api.WriteError(rw, api.Errorf(http.StatusBadRequest, api.TypeInvalidRequest, "expired", "sealed request expires more than %v ahead", seal.DefaultMaxLifetime))
		return
	}
	if err := env.VerifySignature(); err != nil {
		api.WriteError(rw, unauthorized(err))
		return
	}
	// Counted from here (not while a slow client sends its body), so that
	// Close waits for every request that may book and pay.
	if !p.enter() {
		api.WriteError(rw, api.Errorf(http.StatusServiceUnavailable, api.TypeUnavailable, "closing", "the proxy is shutting down"))
		return
	}
	defer p.serving.Done()
	client := hex.EncodeToString(env.Header.ClientKey)
	credit, aerr := p.credit(client)
	if aerr != nil {
		api.WriteError(rw, aerr)
		return
	}
	hold := env.MaxCost()
	id := hex.EncodeToString(env.Header.RequestID[:])
	ticket, err := p.ledger.Admit(client, id, env.Header.Expires, hold, credit)
	switch {
	case errors.Is(err, accounts.ErrDuplicate):
		api.WriteError(rw, api.Errorf(http.StatusConflict, api.TypeInvalidRequest, "duplicate_request", "%v", err))
		return
	case err != nil:
		api.WriteError(rw, api.Errorf(http.StatusPaymentRequired, api.TypeInsufficient, "credit_limit", "%v", err))
		return
	}
	defer ticket.Release() // unless booked
	q := &request{raw: raw, env: env, client: client, ticket: ticket, hold: hold, deadline: now.Add(p.cfg.QueueTimeout),
		log: p.log.With("request_id", id)}
	if exp := time.Unix(env.Header.Expires, 0); exp.Before(q.deadline) {
		q.deadline = exp // the worker would refuse it then
	}
	var last *wire.ErrorRecord
	for {
		w, err := p.acquire(r.Context(), q)
		if err != nil {
			api.WriteError(rw, p.unrouted(err, q, last))
			return
		}
		done, erec := p.try(rw, r, w, q)
		p.release(w)
		if done {
			return
		}
		last = erec
		if !erec.Retry {
			api.WriteError(rw, &last.Error)
			return
		}
		q.skip = append(q.skip, w)
		q.log.Info("retrying on another worker", "from", w.name, "err", erec.Message)
	}
}

// unrouted is the answer to a request that got no slot (acquire's err),
// after last, the error of the worker it last failed on, if any.
func (p *Proxy) unrouted(err error, q *request, last *wire.ErrorRecord) *api.Error {
	model := q.env.Header.Model
	switch {
	case errors.Is(err, errQueueFull):
		return api.RateLimited("%d requests for model %q are waiting for a worker; retry later", p.cfg.QueueSize, model)
	case errors.Is(err, errQueueTimeout):
		return api.RateLimited("no worker for model %q had a free slot in time; retry later", model)
	case errors.Is(err, errClosing):
		return api.Errorf(http.StatusServiceUnavailable, api.TypeUnavailable, "closing", "the proxy is shutting down")
	case last != nil:
		return &last.Error // every worker it could go to failed it
	case errors.Is(err, errNoServer):
		return api.Errorf(http.StatusServiceUnavailable, api.TypeUnavailable, "no_worker", "no connected worker serves model %q within the price limit", model)
	case errors.Is(err, errNotConnected):
		return api.Errorf(http.StatusServiceUnavailable, api.TypeUnavailable, "no_worker", "%v", err)
	}
	// The client went away while it waited: nobody reads this.
	return api.Errorf(http.StatusServiceUnavailable, api.TypeUnavailable, "gone", "%v", err)
}

// request is one sealed request being routed.
type request struct {
	raw    []byte
	env    *seal.Envelope
	client string // hex account key
	ticket *accounts.Ticket
	hold   uint64       // the most the request may cost
	log    *slog.Logger // with the request's id, as the client and the worker log it

	// Admission (see acquire): when it stops waiting for a slot, its place
	// in its model's queue, and the workers that failed it.
	deadline time.Time
	seq      uint64
	skip     []*workerConn
}

func unauthorized(err error) *api.Error {
	return api.Errorf(http.StatusUnauthorized, api.TypeInvalidRequest, "bad_signature", "%v", err)
}

// try sends the request to w. It returns done once it has answered the
// client; otherwise the worker's error, which says whether to retry.
//
// The worker's request does not end when the client goes away: once a
// worker has started, the proxy drains its answer (for at most
// DrainTimeout) and books the receipt, which proves what was produced, so
// a client cannot hang up before the receipt to be served for free.
func (p *Proxy) try(rw http.ResponseWriter, r *http.Request, w *workerConn, q *request) (done bool, _ *wire.ErrorRecord) {
	lost := func(err error) *wire.ErrorRecord {
		return &wire.ErrorRecord{Error: *api.Errorf(http.StatusBadGateway, api.TypeServer, "worker_lost", "worker %s failed: %v", w.name, err), Retry: true}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), p.cfg.DrainTimeout)
	defer cancel()
	unhook := context.AfterFunc(p.stopped, cancel) // a closing proxy cuts every answer
	defer unhook()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://worker"+wire.PathRun, bytes.NewReader(q.raw))
	if err != nil {
		return false, lost(err)
	}
	req.Header.Set("Content-Type", wire.ContentEnvelope)
	resp, err := w.cc.RoundTrip(req)
	if err != nil {
		return false, lost(err)
	}
	// The slot is given back (by the caller) once the stream has ended:
	// by then the worker's handler has returned, and counts the request no
	// more, so the next one is not refused as over its capacity.
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, seal.MaxRecord))
		resp.Body.Close()
	}()
	rr := seal.NewRecordReader(resp.Body)
	typ, payload, err := rr.Next()
	if err != nil {
		return false, lost(err)
	}
	w.mu.Lock()
	w.latency = (w.latency*7 + time.Since(start)) / 8
	w.mu.Unlock()
	if typ == seal.RecordError {
		erec, err := wire.ParseErrorRecord(payload)
		if err != nil {
			return false, lost(err)
		}
		return false, erec
	}

	// Committed to this worker: relay every record as it comes.
	rw.Header().Set("Content-Type", wire.ContentRecords)
	rw.WriteHeader(http.StatusOK)
	flusher, _ := rw.(http.Flusher)
	gone := false // the client went away; keep draining for the receipt
	var resHash seal.ResponseHasher
	for {
		if typ == seal.RecordChunk {
			resHash.Add(payload)
		}
		if !gone {
			gone = seal.WriteRecord(rw, typ, payload) != nil
			if !gone && flusher != nil && (q.env.Header.Stream || typ != seal.RecordChunk) {
				flusher.Flush()
			}
		}
		switch typ {
		case seal.RecordReceipt:
			// The client checks the receipt itself; the proxy checks it
			// after relaying it, off the answer's critical path.
			if err := p.book(payload, w, q, resHash.Sum()); err != nil {
				p.metrics.ReceiptRefused()
				q.log.Error("refusing worker receipt", "worker", w.name, "err", err)
			} else {
				q.log.Debug("request served", "worker", w.name)
			}
			return true, nil
		case seal.RecordError:
			if erec, err := wire.ParseErrorRecord(payload); err == nil {
				api.NoteError(rw, &erec.Error)
			}
			return true, nil
		}
		typ, payload, err = rr.Next()
		if err != nil {
			if ctx.Err() == nil {
				q.log.Warn("worker lost mid-stream", "worker", w.name, "err", err)
			}
			erec := lost(err)
			erec.Retry = false
			api.NoteError(rw, &erec.Error)
			if !gone {
				seal.WriteRecord(rw, seal.RecordError, mustJSON(erec))
			}
			return true, nil
		}
	}
}

// book checks a worker's receipt against what the proxy relayed and books
// it on the request's ticket; only a receipt booked now is paid to the
// worker, so no answer is paid twice.
func (p *Proxy) book(b []byte, w *workerConn, q *request, resHash [32]byte) error {
	env := q.env
	rc, err := seal.ParseReceipt(b)
	if err != nil {
		return err
	}
	p.mu.Lock()
	_, ours := w.keys[rc.Worker] // the current or a superseded bundle of w's keys
	p.mu.Unlock()
	w.mu.Lock()
	v := w.verified
	w.mu.Unlock()
	if err := rc.Verify(v.Bundle.SigningKey); err != nil {
		return err
	}
	switch {
	case !ours:
		return errors.New("receipt names another worker")
	case rc.RequestID != env.Header.RequestID || rc.HeaderHash != env.Header.Hash():
		return errors.New("receipt is for another request")
	case rc.RequestHash != sha256.Sum256(q.raw):
		return errors.New("receipt's request hash does not match the relayed envelope")
	case rc.ResponseHash != resHash:
		return errors.New("receipt's response hash does not match the relayed answer")
	}
	if err := env.Allows(rc); err != nil { // price within the cap, usage within the request's bound
		return err
	}
	workerPay := p.workerPay(rc)
	err = q.ticket.Book(accounts.Entry{
		Time:      rc.Time,
		RequestID: hex.EncodeToString(rc.RequestID[:]),
		Client:    q.client,
		Worker:    hex.EncodeToString(rc.Worker[:]),
		Model:     rc.Model,
		Usage:     rc.Usage,
		Cost:      rc.Cost.Total,
		WorkerPay: workerPay,
	})
	if err != nil {
		return err
	}
	p.metrics.Tokens(rc.Usage)
	p.payWorker(w, workerPay)
	return nil
}

// workerPay is the worker's share of an answer (price.Split, the rule the
// worker books by too); the proxy keeps the rest.
func (p *Proxy) workerPay(rc *seal.Receipt) uint64 {
	return price.Split{WorkerFee: p.cfg.WorkerFee, FeeBPS: p.cfg.FeeBPS}.WorkerPay(rc.Price, rc.Usage, rc.Cost.Total)
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
