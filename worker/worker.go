// Package worker runs the worker role: it holds the attested keys, dials a
// proxy, opens the sealed requests the proxy relays, runs them on an engine,
// and streams the answers back sealed, ending each with a signed receipt.
//
// Nothing outside the worker (and its engine) sees a prompt or an answer in
// the clear: the worker is meant to run inside a confidential VM whose
// evidence binds the keys it publishes.
package worker

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/internal/atomicfile"
	"github.com/cocoon-go/cocoon/metrics"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
)

// Config configures a worker.
type Config struct {
	Name      string        `json:"name"`
	Proxy     string        `json:"proxy"`      // host:port of the proxy's worker listener
	ProxyPin  string        `json:"proxy_pin"`  // hex SHA-256 of the proxy's TLS key; empty accepts any
	Capacity  int           `json:"capacity"`   // requests served at once
	Price     price.Price   `json:"price"`      // what this worker charges
	BundleTTL time.Duration `json:"bundle_ttl"` // how long a published key bundle is valid
	KEM       uint16        `json:"kem"`        // HPKE KEM of the worker's key; 0: MLKEM768-X25519

	// EvidenceFile, if set, is where the worker writes its current evidence
	// each time it attests, for operators to check it with
	// `cocoon attest verify --bundle`.
	EvidenceFile string `json:"evidence_file,omitempty"`
	// GPU, if set, adds GPU evidence bound to each key bundle.
	GPU attest.GPUProducer `json:"-"`
	// GPURefresh is how often evidence with GPU evidence is remade: NRAS
	// tokens are valid for an hour. Zero means 30 minutes.
	GPURefresh time.Duration `json:"gpu_refresh,omitempty"`
	// AllowRemoteEngine lets the worker send prompts to an engine outside
	// its own machine (see attest.LocalEngine). Without it the worker
	// refuses to attest such an engine; with it, the engine's endpoint is in
	// the attested bundle for clients to judge (they refuse it by default).
	AllowRemoteEngine bool `json:"allow_remote_engine,omitempty"`
}

// Identity is the worker's long-lived keys.
type Identity struct {
	HPKE    *seal.PrivateKey
	Signing ed25519.PrivateKey
	TLS     tls.Certificate
}

// LoadIdentity reads the worker's keys from dir, creating them on first use.
func LoadIdentity(dir string, kem uint16) (*Identity, error) {
	if kem == 0 {
		kem = seal.KEMMLKEM768X25519
	}
	hk, err := identity.Secret(filepath.Join(dir, "hpke.key"), func() ([]byte, error) {
		k, err := seal.GenerateKey(kem)
		if err != nil {
			return nil, err
		}
		return k.Bytes(), nil
	})
	if err != nil {
		return nil, err
	}
	hpke, err := seal.ParsePrivateKey(hk)
	if err != nil {
		return nil, fmt.Errorf("worker: %s: %w", filepath.Join(dir, "hpke.key"), err)
	}
	sign, err := identity.Ed25519(filepath.Join(dir, "signing.key"))
	if err != nil {
		return nil, err
	}
	cert, err := identity.TLS(filepath.Join(dir, "tls.pem"), "cocoon-worker")
	if err != nil {
		return nil, err
	}
	return &Identity{HPKE: hpke, Signing: sign, TLS: cert}, nil
}

// Worker serves sealed requests.
type Worker struct {
	cfg    Config
	id     *Identity
	engine engine.Engine
	tee    attest.Producer
	log    *slog.Logger

	mu          sync.Mutex
	keyID       [32]byte
	previous    []pastKey // superseded bundles still accepted, newest first
	evidence    []byte
	expires     time.Time     // the bundle's expiry
	refreshAt   time.Time     // when to make new evidence, well before any part of it expires
	refreshDone chan struct{} // closed when the refresh under way ends; nil when none runs

	inflight atomic.Int64
	replay   seal.ReplayCache
	handler  http.Handler

	money   *money    // nil: the worker takes no payments
	pending *Payments // WithPayments' choice, set up once every option is applied
	metrics *metrics.Worker
	linked  atomic.Bool // the link to the proxy is up
}

// New returns a worker that runs requests on eng and proves its keys with
// tee, with what opts choose (WithPayments).
func New(cfg Config, id *Identity, eng engine.Engine, tee attest.Producer, log *slog.Logger, opts ...Option) (*Worker, error) {
	if cfg.Capacity <= 0 {
		cfg.Capacity = 4
	}
	if cfg.BundleTTL <= 0 {
		cfg.BundleTTL = 24 * time.Hour
	}
	if cfg.GPURefresh <= 0 {
		cfg.GPURefresh = 30 * time.Minute
	}
	if cfg.Price == (price.Price{}) {
		cfg.Price = price.Default
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Worker{cfg: cfg, id: id, engine: eng, tee: tee, log: log}
	if err := w.refreshEvidence(); err != nil {
		return nil, err
	}
	for _, o := range opts {
		if err := o(w); err != nil {
			return nil, err
		}
	}
	// Payments start after every option, so that their first voucher
	// already meets the metrics.
	if w.pending != nil {
		if err := w.payWith(w.pending); err != nil {
			return nil, err
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+wire.PathHello, w.serveHello)
	mux.Handle("POST "+wire.PathRun, w.metrics.Requests(http.HandlerFunc(w.serveRun)))
	mux.HandleFunc("POST "+wire.PathVouchers, w.serveVoucher)
	w.handler = mux
	return w, nil
}

// pastKey is the key ID of a superseded bundle and when that bundle expires.
type pastKey struct {
	id      [32]byte
	expires time.Time
}

// KeyID is the hash of the worker's current key bundle.
func (w *Worker) KeyID() [32]byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.keyID
}

// Handler serves the worker's side of the protocol. Run serves it on the
// connection to the proxy; tests may serve it directly.
func (w *Worker) Handler() http.Handler { return w.handler }

// refreshEvidence publishes a new key bundle with a fresh expiry and asks the
// TEE for evidence binding it.
func (w *Worker) refreshEvidence() error {
	tlsHash, err := identity.CertKeyHash(w.id.TLS)
	if err != nil {
		return err
	}
	var models []attest.Model
	for _, m := range w.engine.Models() {
		models = append(models, attest.Model{Name: m.ID, Hash: m.Hash, Upstream: m.Upstream})
	}
	// What decides where plaintext goes and what is charged is attested
	// with the keys, and an engine off this machine only when allowed.
	endpoint := w.engine.Endpoint()
	if !attest.LocalEngine(endpoint) && !w.cfg.AllowRemoteEngine {
		return fmt.Errorf("worker: %w: %s (prompts would leave the TEE in the clear; allow it explicitly with --allow-remote-engine)", attest.ErrRemoteEngine, endpoint)
	}
	now := time.Now()
	b := &attest.Bundle{
		HPKEKey:    w.id.HPKE.PublicKey(),
		SigningKey: w.id.Signing.Public().(ed25519.PublicKey),
		TLSKeyHash: tlsHash,
		Models:     models,
		Created:    now.Unix(),
		Expires:    now.Add(w.cfg.BundleTTL).Unix(),
		Config:     attest.RuntimeConfig{Engine: endpoint, KEM: w.id.HPKE.KEM(), Price: w.cfg.Price},
	}
	ev, err := attest.Attest(w.tee, b, w.cfg.GPU)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	raw := ev.Marshal()
	if w.cfg.EvidenceFile != "" {
		if err := atomicfile.WriteFile(w.cfg.EvidenceFile, raw, 0o644); err != nil {
			return fmt.Errorf("worker: write evidence: %w", err)
		}
	}
	refreshAt := now.Add(w.cfg.BundleTTL / 2)
	if len(ev.GPU) > 0 && w.cfg.GPURefresh < w.cfg.BundleTTL/2 {
		refreshAt = now.Add(w.cfg.GPURefresh)
	}
	w.mu.Lock()
	if id := b.Hash(); id != w.keyID && w.keyID != ([32]byte{}) {
		// Same keys, new metadata: clients holding the old bundle keep
		// sealing to its key ID until it expires.
		w.previous = append([]pastKey{{w.keyID, w.expires}}, w.previous...)
	}
	w.previous = slices.DeleteFunc(w.previous, func(k pastKey) bool { return !now.Before(k.expires) })
	w.previous = w.previous[:min(len(w.previous), wire.MaxPreviousKeys)]
	w.keyID, w.evidence, w.expires, w.refreshAt = b.Hash(), raw, time.Unix(b.Expires, 0), refreshAt
	w.mu.Unlock()
	digest := b.ConfigDigest()
	w.log.Info("attested", "kind", ev.Kind, "key", fmt.Sprintf("%x", w.keyID[:8]), "engine", endpoint, "config", fmt.Sprintf("%x", digest), "gpu_evidence", len(ev.GPU) > 0, "collateral", len(ev.Collateral) > 0, "expires", time.Unix(b.Expires, 0).UTC().Format(time.RFC3339))
	return nil
}

// expiredWait is how long a hello waits for new evidence when the current
// has expired: less than a proxy waits for a hello.
const expiredWait = 10 * time.Second

// maybeRefresh makes new evidence once it is due, in the background, one
// refresh at a time: asking the TEE, NRAS or Intel PCS may take seconds,
// longer than a proxy waits for a hello, and the current evidence is still
// valid. Only when it has expired does the hello wait for the new one (at
// most expiredWait).
func (w *Worker) maybeRefresh() {
	w.mu.Lock()
	now := time.Now()
	due, expired := !now.Before(w.refreshAt), !now.Before(w.expires)
	w.mu.Unlock()
	if !due && !expired {
		return
	}
	done := w.startRefresh()
	if expired {
		select {
		case <-done:
		case <-time.After(expiredWait):
		}
	}
}

// startRefresh starts a refresh of the evidence unless one is under way,
// and returns a channel closed when the one under way ends.
func (w *Worker) startRefresh() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.refreshDone != nil {
		return w.refreshDone
	}
	done := make(chan struct{})
	w.refreshDone = done
	go func() {
		if err := w.refreshEvidence(); err != nil {
			w.log.Error("refreshing evidence", "err", err)
		}
		w.mu.Lock()
		w.refreshDone = nil
		w.mu.Unlock()
		close(done)
	}()
	return done
}

func (w *Worker) serveHello(rw http.ResponseWriter, r *http.Request) {
	w.maybeRefresh()
	w.mu.Lock()
	h := wire.Hello{Name: w.cfg.Name, Evidence: w.evidence, Price: w.cfg.Price, Capacity: w.cfg.Capacity}
	w.mu.Unlock()
	if w.money != nil {
		h.Payout = w.money.Wallet.Address().String()
	}
	for _, m := range w.engine.Models() {
		h.Models = append(h.Models, m.ID)
	}
	rw.Header().Set("Content-Type", "application/json")
	json.NewEncoder(rw).Encode(h)
}

// Run keeps a connection to the proxy until ctx is done, redialling with
// exponential backoff (0.2 s doubling to 30 s, with jitter) when it drops.
func (w *Worker) Run(ctx context.Context) error {
	tcfg, err := identity.PinnedConfig(w.cfg.ProxyPin)
	if err != nil {
		return err
	}
	tcfg.Certificates = []tls.Certificate{w.id.TLS}
	tcfg.NextProtos = []string{wire.ALPN}
	if w.cfg.ProxyPin == "" {
		w.log.Warn("no proxy pin configured: accepting any proxy certificate (prompts stay sealed; metadata does not)")
	}
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		err := w.serveOnce(ctx, tcfg)
		if ctx.Err() != nil {
			break
		}
		if time.Since(start) > time.Minute {
			backoff = 200 * time.Millisecond
		}
		wait := backoff/2 + rand.N(backoff)
		w.log.Warn("proxy connection lost; reconnecting", "proxy", w.cfg.Proxy, "err", err, "in", wait.Round(time.Millisecond))
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
	// A clean stop claims whatever the proxy's vouchers cover.
	if w.money != nil {
		w.claim()
	}
	return nil
}

// ControlStreams is how many streams a worker's connection to a proxy
// allows beyond its capacity, for the proxy's hellos and voucher posts.
const ControlStreams = 8

// serveOnce dials the proxy and serves HTTP/2 on the connection until it ends.
func (w *Worker) serveOnce(ctx context.Context, tcfg *tls.Config) error {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 15 * time.Second}, Config: tcfg}
	conn, err := d.DialContext(ctx, "tcp", w.cfg.Proxy)
	if err != nil {
		return fmt.Errorf("dialing proxy %s: %w", w.cfg.Proxy, err)
	}
	id := w.KeyID()
	w.log.Info("connected to proxy", "proxy", w.cfg.Proxy, "key_id", hex.EncodeToString(id[:8]))
	w.link(true)
	defer w.link(false)
	// Requests on this connection must name this proxy (seal.Header.Proxy).
	if peer := conn.(*tls.Conn).ConnectionState().PeerCertificates; len(peer) > 0 {
		ctx = context.WithValue(ctx, proxyKey{}, identity.KeyHash(peer[0]))
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	// The proxy relays at most Capacity requests at once; the streams
	// beyond them are kept for its hellos and vouchers, which must never
	// wait behind requests.
	srv := &http2.Server{IdleTimeout: 0, MaxConcurrentStreams: uint32(w.cfg.Capacity + ControlStreams)}
	srv.ServeConn(conn, &http2.ServeConnOpts{Context: ctx, Handler: w.handler, BaseConfig: &http.Server{}})
	return errors.New("connection closed")
}

// serveRun opens one sealed request, runs it and streams the sealed answer.
// Errors before the first chunk are error records the proxy may retry
// elsewhere; errors after it end the stream without a receipt, so the client
// pays nothing for an answer it did not get whole.
//
// Once the request is open, an error's text (which may quote the prompt, as
// api.ParseRequest's and vLLM's do, or come from the engine) is sealed to the
// client with the session's keys; the clear record says only status, type,
// code and retry, for the proxy to route on. Nor does the text go to the
// log, which the host reads.
func (w *Worker) serveRun(rw http.ResponseWriter, r *http.Request) {
	var sess *seal.WorkerSession
	log := w.log // with the request's id once it is known
	fail := func(e *api.Error, retry bool) {
		log.Debug("request refused", "status", e.Status, "code", e.Code)
		api.NoteError(rw, e)
		rec := wire.ErrorRecord{Error: *e, Retry: retry}
		if sess != nil {
			if len(rec.Message) > maxErrorText {
				rec.Message = strings.ToValidUTF8(rec.Message[:maxErrorText], "") + "…"
			}
			detail, _ := json.Marshal(rec)
			rec.Error = api.Error{Status: e.Status, Type: e.Type, Code: e.Code, Message: e.Code + " (the details are sealed to the client)"}
			rec.Sealed, _ = sess.SealError(detail)
		}
		b, _ := json.Marshal(rec)
		rw.Header().Set("Content-Type", wire.ContentRecords)
		seal.WriteRecord(rw, seal.RecordError, b)
	}
	refuse := func(status int, typ, code, msg string, retry bool) {
		fail(&api.Error{Status: status, Type: typ, Code: code, Message: msg}, retry)
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, seal.MaxEnvelope+1))
	if err != nil {
		refuse(http.StatusBadGateway, api.TypeServer, "read_failed", "reading request: "+err.Error(), true)
		return
	}
	if len(raw) > seal.MaxEnvelope {
		refuse(http.StatusRequestEntityTooLarge, api.TypeInvalidRequest, "too_large", "sealed request is too large", false)
		return
	}
	env, body, opened, err := w.open(raw)
	if err != nil {
		refuse(http.StatusBadRequest, api.TypeInvalidRequest, "bad_envelope", "cannot open sealed request: "+err.Error(), false)
		return
	}
	sess = opened
	h := &env.Header
	log = log.With("request_id", hex.EncodeToString(h.RequestID[:]))
	// Before the replay check, so that a copy relayed through the wrong
	// proxy does not use up the request.
	if proxy, ok := r.Context().Value(proxyKey{}).([32]byte); ok && h.Proxy != proxy {
		refuse(http.StatusMisdirectedRequest, api.TypeInvalidRequest, "misdirected_request", "the sealed request is bound to another proxy", false)
		return
	}
	now := time.Now()
	if err := w.replay.Check(h, now); err != nil {
		refuse(http.StatusBadRequest, api.TypeInvalidRequest, "replayed_or_expired", err.Error(), false)
		return
	}
	req, err := api.ParseRequest(h.Endpoint, body)
	if err != nil {
		var ae *api.Error
		errors.As(err, &ae)
		ae.Code = "invalid_request"
		fail(ae, false)
		return
	}
	// The clear fields the proxy routed on must say what the sealed body says
	// (limits compared in uint64: nothing wraps).
	if req.Model != h.Model || req.Stream != h.Stream || uint64(req.Limit()) != uint64(h.MaxTokens) {
		refuse(http.StatusBadRequest, api.TypeInvalidRequest, "header_mismatch", "routing fields do not match the sealed request", false)
		return
	}
	if !w.cfg.Price.Within(h.PriceCap) {
		refuse(http.StatusServiceUnavailable, api.TypeUnavailable, "price", "worker price is above the client's limit", true)
		return
	}
	// A proxy sends no more than Capacity at once, but proxies share the
	// worker: one beyond is refused 429, which the proxy retries on another
	// worker, or passes on with Retry-After.
	if n := w.inflight.Add(1); n > int64(w.cfg.Capacity) {
		w.inflight.Add(-1)
		fail(api.RateLimited("worker is at capacity"), true)
		return
	}
	defer w.inflight.Add(-1)
	// A paid worker holds what the request may be worth against the
	// proxy's credit until its receipt is booked (see books).
	proxy := proxyOf(r)
	var ticket *accounts.Ticket
	if w.money != nil {
		ticket, err = w.money.books.admit(proxy, h, w.cfg.Price.MaxCost(env.MaxUsage()))
		switch {
		case errors.Is(err, accounts.ErrDuplicate):
			refuse(http.StatusBadRequest, api.TypeInvalidRequest, "replayed_or_expired", err.Error(), false)
			return
		case err != nil:
			log.Warn("refusing a proxy that does not pay", "proxy", proxy, "err", err)
			refuse(http.StatusPaymentRequired, api.TypeInsufficient, "proxy_unpaid", err.Error(), true)
			return
		}
		defer ticket.Release() // unless booked
	}

	ereq := engineRequest(req, h, body)
	rw.Header().Set("Content-Type", wire.ContentRecords)
	flusher, _ := rw.(http.Flusher)
	emitted := 0
	emit := func(data []byte) error {
		sealed, err := sess.SealChunk(data, false)
		if err != nil {
			return err
		}
		if err := seal.WriteRecord(rw, seal.RecordChunk, sealed); err != nil {
			return err
		}
		emitted++
		// A streamed answer goes out chunk by chunk; a whole one leaves
		// with its receipt when the handler returns.
		if flusher != nil && h.Stream {
			flusher.Flush()
		}
		return nil
	}
	usage, err := w.engine.Run(r.Context(), ereq, emit)
	if err != nil {
		status, typ, code, retry := http.StatusBadGateway, api.TypeServer, "engine_failed", emitted == 0
		var bad *engine.BadRequestError
		switch {
		case errors.As(err, &bad):
			status, typ, code, retry = http.StatusBadRequest, api.TypeInvalidRequest, "invalid_request", false
		case errors.Is(err, engine.ErrUnknownModel):
			status, typ, code, retry = http.StatusNotFound, api.TypeNotFound, "model_not_found", true
		}
		if r.Context().Err() == nil {
			log.Warn("engine failed", "code", code, "streamed_chunks", emitted) // not its text: it may quote the prompt
		}
		refuse(status, typ, code, err.Error(), retry)
		return
	}
	// An engine's counts are capped by what the request could produce
	// (seal.MaxUsage): the answer was delivered, so the receipt is signed,
	// at the bound, rather than withheld; the client would refuse more.
	if bounded, cut := sess.Bound(usage); cut {
		log.Warn("engine reported more tokens than the request allows; charging the bound", "reported", usage, "charged", bounded)
		usage = bounded
	}
	if _, err := w.cfg.Price.Cost(usage); err != nil {
		refuse(http.StatusBadGateway, api.TypeServer, "pricing", err.Error(), false)
		return
	}
	final, err := sess.SealChunk(nil, true)
	if err != nil {
		return
	}
	if seal.WriteRecord(rw, seal.RecordChunk, final) != nil {
		return
	}
	rc, err := sess.Receipt(usage, w.cfg.Price, time.Now())
	if err != nil {
		log.Error("making receipt", "err", err)
		return
	}
	if err := rc.Sign(w.id.Signing); err != nil {
		return
	}
	// The whole answer is out (its final chunk written): the proxy owes
	// for it whether or not it reads the receipt.
	if ticket != nil {
		if err := w.money.books.book(ticket, proxy, rc); err != nil {
			log.Error("booking a receipt", "err", err)
		}
	}
	seal.WriteRecord(rw, seal.RecordReceipt, rc.Marshal())
	w.metrics.Tokens(usage)
	log.Debug("request served", "model", h.Model)
}

// maxErrorText is the most of an error's message a worker seals to the
// client: the record carrying it must stay under seal.MaxRecord.
const maxErrorText = 16 << 10

// proxyKey is the context key of the TLS key hash of the proxy a request
// came through, set for requests served on a dialed connection.
type proxyKey struct{}

// proxyOf names the proxy r came from: its TLS key hash, hex; "" for a
// request not served on a dialed connection (tests serving Handler).
func proxyOf(r *http.Request) string {
	if k, ok := r.Context().Value(proxyKey{}).([32]byte); ok {
		return hex.EncodeToString(k[:])
	}
	return ""
}

// open opens a sealed request addressed to the worker's current key ID or,
// failing that, to one of its superseded bundles that has not expired: all
// of them carry the same HPKE key.
func (w *Worker) open(raw []byte) (*seal.Envelope, []byte, *seal.WorkerSession, error) {
	w.mu.Lock()
	ids := [][32]byte{w.keyID}
	now := time.Now()
	for _, k := range w.previous {
		if now.Before(k.expires) {
			ids = append(ids, k.id)
		}
	}
	w.mu.Unlock()
	env, body, sess, err := seal.Open(raw, ids[0], w.id.HPKE)
	for _, id := range ids[1:] {
		if !errors.Is(err, seal.ErrNotRecipient) {
			break
		}
		if e, b, s, err2 := seal.Open(raw, id, w.id.HPKE); !errors.Is(err2, seal.ErrNotRecipient) {
			return e, b, s, err2
		}
	}
	return env, body, sess, err
}

func engineRequest(req *api.Request, h *seal.Header, body []byte) *engine.Request {
	e := &engine.Request{
		Kind:        engine.Kind(h.Endpoint),
		ID:          api.CompletionID(h.Endpoint, h.RequestID),
		Created:     time.Now().Unix(),
		Model:       h.Model,
		Stream:      h.Stream,
		Body:        body,
		Prompt:      string(req.Prompt),
		MaxTokens:   int(h.TokenLimit()), // never unbounded: the receipt may not claim more
		Temperature: req.Temperature,
		TopP:        req.TopP,
		Seed:        req.Seed,
		Stop:        req.Stop,
		CacheSalt:   hex.EncodeToString(h.ClientKey),
	}
	for _, m := range req.Messages {
		e.Messages = append(e.Messages, engine.Message{Role: m.Role, Content: string(m.Content)})
	}
	return e
}

// Models lists the names of the models this worker serves.
func (w *Worker) Models() []string {
	var names []string
	for _, m := range w.engine.Models() {
		names = append(names, m.ID)
	}
	return names
}
