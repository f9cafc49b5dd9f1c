// Package testnet starts a whole Cocoon network inside a test: a simulated
// TEE vendor, a proxy whose client-facing traffic is recorded, workers
// running given engines (optionally with GPU evidence), and a client
// serving the OpenAI API, all on loopback. It is a test helper; nothing in
// the product imports it.
package testnet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/simulated"
	"github.com/cocoon-go/cocoon/client"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/internal/serve"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/metrics"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/proxy"
	"github.com/cocoon-go/cocoon/wire"
	"github.com/cocoon-go/cocoon/worker"
)

// GuestKey is an account key every test network's proxy serves besides its
// client's, for tests that seal envelopes by hand.
var GuestKey = func() ed25519.PrivateKey {
	_, k, _ := ed25519.GenerateKey(nil)
	return k
}()

// Options shape a test network.
type Options struct {
	Engines     []engine.Engine // one worker per engine
	CreditLimit uint64          // proxy's credit limit per client (0: the proxy's default)
	Clients     []string        // more client keys (hex) the proxy serves besides the network's client
	Fanout      int             // client's k
	Capacity    int             // each worker's capacity (0: 4)
	WorkerPrice price.Price     // zero: price.Default
	Log         *slog.Logger    // nil: discard
	// DirectoryTTL is how long the client reuses the proxy's worker list;
	// 0: 50ms, so tests see workers come and go quickly.
	DirectoryTTL time.Duration
	// Tamper, if set, may rewrite what the proxy writes back to a sealed request.
	Tamper func(b []byte) []byte
	// Unrecorded leaves the proxy's traffic unrecorded (Net.Recorder is nil),
	// as benchmarks want.
	Unrecorded bool
	// GPU[i], if set, adds GPU evidence to worker i's key bundles.
	GPU []attest.GPUProducer
	// BundleTTL and GPURefresh set the workers' worker.Config fields of
	// those names (0: the worker's defaults).
	BundleTTL, GPURefresh time.Duration
	// HelloInterval is how often the proxy re-reads each worker's hello
	// (0: the proxy's default, a minute).
	HelloInterval time.Duration
	// Unpinned starts the client without the proxy's pin: it binds its
	// envelopes to the key the proxy shows.
	Unpinned bool
	// Checker, if set, edits the attestation checker of the proxy and of
	// the client (role "proxy" or "client") before use, for example to set
	// a GPU verifier or require a GPU.
	Checker func(role string, c *attest.Checker)
	// ClientConfig, if set, edits the client's configuration before the
	// client is made (spending caps, API keys).
	ClientConfig func(c *client.Config)
	// QueueSize and QueueTimeout set the proxy's proxy.Config fields of
	// those names (0: the proxy's defaults).
	QueueSize    int
	QueueTimeout time.Duration
	// Metrics, if set, is where every role registers its metrics, as in
	// `cocoon up` (each worker's labelled worker=NAME).
	Metrics *prometheus.Registry
}

// Net is a running test network.
type Net struct {
	Proxy      *proxy.Proxy
	Ledger     *accounts.File
	Client     *client.Client
	Journal    *accounts.File
	Workers    []*worker.Worker
	BaseURL    string // the client's OpenAI base URL
	ProxyURL   string
	ProxyKey   [32]byte // hash of the proxy's TLS key: clients pin it, envelopes name it
	Vendor     *simulated.Vendor
	ClientKey  string // hex
	Recorder   *Recorder
	Links      *Relay // between workers and the proxy
	workerStop []context.CancelFunc
	refusals   *refusals
	log        *slog.Logger
}

// Start builds a network and stops it when the test ends.
func Start(t testing.TB, opts Options) *Net {
	t.Helper()
	dir := t.TempDir()
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	refused := &refusals{byRole: map[string][]error{}}
	log = slog.New(&refusalHandler{next: log.Handler(), r: refused})
	vendor, err := simulated.LoadVendor(filepath.Join(dir, "vendor"))
	if err != nil {
		t.Fatal(err)
	}
	checker := func(role string) *attest.Cache {
		c := &attest.Checker{
			Verifiers: []attest.Verifier{attest.NewSimulatedVerifier(vendor.Roots())},
			Policy:    attest.Policy{SimulatedMeasurements: [][32]byte{simulated.Measurement}, MaxAge: time.Hour},
			Now:       time.Now,
		}
		if opts.Checker != nil {
			opts.Checker(role, c)
		}
		return attest.NewCache(c)
	}
	n := &Net{Vendor: vendor, Recorder: &Recorder{tamper: opts.Tamper}, refusals: refused, log: log}

	cert, err := identity.TLS(filepath.Join(dir, "proxy", "tls.pem"), "cocoon-proxy")
	if err != nil {
		t.Fatal(err)
	}
	pinb, _ := identity.CertKeyHash(cert)
	pin := hex.EncodeToString(pinb[:])
	n.ProxyKey = pinb
	n.Ledger, err = accounts.OpenFile(filepath.Join(dir, "proxy", "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	// The proxy takes no payments here, so it serves the keys it is told to.
	key, err := identity.Ed25519(filepath.Join(dir, "client", "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	n.ClientKey = hex.EncodeToString(key.Public().(ed25519.PublicKey))
	var (
		proxyOpts  []proxy.Option
		clientOpts []client.Option
	)
	if opts.Metrics != nil {
		proxyOpts = append(proxyOpts, proxy.WithMetrics(metrics.NewProxy(opts.Metrics)))
		clientOpts = append(clientOpts, client.WithMetrics(metrics.NewClient(opts.Metrics)))
	}
	n.Proxy, err = proxy.New(proxy.Config{FeeBPS: 1000, CreditLimit: opts.CreditLimit, HelloInterval: opts.HelloInterval,
		QueueSize: opts.QueueSize, QueueTimeout: opts.QueueTimeout,
		Clients: append([]string{n.ClientKey, hex.EncodeToString(GuestKey.Public().(ed25519.PublicKey))}, opts.Clients...)}, cert, checker("proxy"), n.Ledger, log.With("role", "proxy"), proxyOpts...)
	if err != nil {
		t.Fatal(err)
	}
	wln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go n.Proxy.ServeWorkers(wln)
	// Workers reach the proxy through a relay the test can cut, as a flaky
	// network between a worker behind NAT and its proxy would.
	n.Links, err = newRelay(wln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	handler := n.Proxy.Handler()
	if opts.Unrecorded {
		n.Recorder = nil
	} else {
		handler = n.Recorder.wrap(handler)
	}
	// The listeners' per-request protections, as nodes serve them.
	srv := httptest.NewUnstartedServer(serve.Handler(handler, serve.DefaultLimits()))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	n.ProxyURL = srv.URL
	t.Cleanup(func() {
		for _, stop := range n.workerStop {
			stop()
		}
		srv.Close()
		wln.Close()
		n.Links.close()
		n.Proxy.Close()
		n.Ledger.Close()
	})

	for i, eng := range opts.Engines {
		id, err := worker.LoadIdentity(filepath.Join(dir, "worker", string(rune('a'+i))), 0)
		if err != nil {
			t.Fatal(err)
		}
		name := "worker-" + string(rune('a'+i))
		var gpu attest.GPUProducer
		if i < len(opts.GPU) {
			gpu = opts.GPU[i]
		}
		var workerOpts []worker.Option
		if opts.Metrics != nil {
			workerOpts = append(workerOpts, worker.WithMetrics(metrics.NewWorker(metrics.ForWorker(opts.Metrics, name))))
		}
		w, err := worker.New(worker.Config{Name: name, Proxy: n.Links.addr, ProxyPin: pin, Capacity: opts.Capacity, Price: opts.WorkerPrice,
			GPU: gpu, BundleTTL: opts.BundleTTL, GPURefresh: opts.GPURefresh},
			id, eng, vendor.Device(simulated.Measurement), log.With("role", name), workerOpts...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { w.Run(ctx); close(done) }()
		n.workerStop = append(n.workerStop, func() { cancel(); <-done })
		n.Workers = append(n.Workers, w)
	}
	// Wait until the proxy has admitted or refused every worker.
	if !waitfor.Holds(func() bool { return n.Proxy.Workers()+n.refusedWorkers() >= len(opts.Engines) }) {
		t.Fatalf("only %d of %d workers connected; the proxy refused %v", n.Proxy.Workers(), len(opts.Engines), n.Refusals("proxy"))
	}

	n.Journal, err = accounts.OpenFile(filepath.Join(dir, "client", "receipts.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if opts.DirectoryTTL == 0 {
		opts.DirectoryTTL = 50 * time.Millisecond
	}
	clientPin := pin
	if opts.Unpinned {
		clientPin = ""
	}
	ccfg := client.Config{Proxy: srv.URL, ProxyPin: clientPin, Fanout: opts.Fanout, DirectoryTTL: opts.DirectoryTTL}
	if opts.ClientConfig != nil {
		opts.ClientConfig(&ccfg)
	}
	n.Client, err = client.New(ccfg, key, checker("client"), n.Journal, log.With("role", "client"), clientOpts...)
	if err != nil {
		t.Fatal(err)
	}
	csrv := httptest.NewServer(serve.Handler(n.Client.Handler(), serve.DefaultLimits()))
	n.BaseURL = csrv.URL + "/v1"
	t.Cleanup(func() { csrv.Close(); n.Journal.Close() })
	return n
}

// Refusals returns the errors with which role ("proxy" or "client") has
// refused workers so far, oldest first, as it logged them. A worker the
// proxy refuses dials again, and is refused again, after a backoff.
func (n *Net) Refusals(role string) []error {
	n.refusals.mu.Lock()
	defer n.refusals.mu.Unlock()
	return slices.Clone(n.refusals.byRole[role])
}

// refusedWorkers counts the workers the proxy has refused: those whose key
// ID a refusal names, as attest's errors do.
func (n *Net) refusedWorkers() int {
	errs := n.Refusals("proxy")
	count := 0
	for _, w := range n.Workers {
		id := w.KeyID()
		if slices.ContainsFunc(errs, func(err error) bool { return strings.Contains(err.Error(), hex.EncodeToString(id[:8])) }) {
			count++
		}
	}
	return count
}

// refusals keeps the errors logged with refusalMessages, by the role of the
// logger.
type refusals struct {
	mu     sync.Mutex
	byRole map[string][]error
}

// refusalMessages are those with which the proxy and the client log a
// worker they refuse, with the reason as "err".
var refusalMessages = map[string]bool{
	"worker refused":                         true, // proxy
	"refusing worker: evidence fails policy": true, // client
}

// refusalHandler passes records on to next, keeping refusals' errors.
type refusalHandler struct {
	next slog.Handler
	role string // the logger's "role" attribute
	r    *refusals
}

func (h *refusalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *refusalHandler) Handle(ctx context.Context, rec slog.Record) error {
	if refusalMessages[rec.Message] {
		rec.Attrs(func(a slog.Attr) bool {
			if err, ok := a.Value.Any().(error); ok && a.Key == "err" {
				h.r.mu.Lock()
				h.r.byRole[h.role] = append(h.r.byRole[h.role], err)
				h.r.mu.Unlock()
			}
			return true
		})
	}
	if !h.next.Enabled(ctx, rec.Level) {
		return nil
	}
	return h.next.Handle(ctx, rec)
}

func (h *refusalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	for _, a := range attrs {
		if a.Key == "role" {
			c.role = a.Value.String()
		}
	}
	c.next = h.next.WithAttrs(attrs)
	return &c
}

func (h *refusalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}

// StopWorker disconnects worker i and waits until it has stopped.
func (n *Net) StopWorker(i int) { n.workerStop[i]() }

// Recorder keeps every byte that crossed the proxy's client-facing API, in
// both directions: what a curious proxy operator could log.
type Recorder struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	tamper func([]byte) []byte
}

// Bytes returns everything recorded so far.
func (r *Recorder) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf.Bytes())
}

func (r *Recorder) add(b []byte) {
	r.mu.Lock()
	r.buf.Write(b)
	r.mu.Unlock()
}

func (r *Recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.add(body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		rw := &recordingWriter{ResponseWriter: w, r: r}
		if req.URL.Path == wire.PathRequests {
			rw.tamper = r.tamper
		}
		h.ServeHTTP(rw, req)
	})
}

type recordingWriter struct {
	http.ResponseWriter
	r      *Recorder
	tamper func([]byte) []byte
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if w.tamper != nil {
		b = w.tamper(bytes.Clone(b))
	}
	w.r.add(b)
	return w.ResponseWriter.Write(b)
}

func (w *recordingWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Relay forwards TCP connections from workers to the proxy, and can cut them.
type Relay struct {
	ln       net.Listener
	addr     string
	mu       sync.Mutex
	conns    map[net.Conn]bool
	accepted int
}

// Addr is where workers dial the proxy through the relay.
func (r *Relay) Addr() string { return r.addr }

// Accepted counts the connections relayed so far.
func (r *Relay) Accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.accepted
}

func newRelay(target string) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, addr: ln.Addr().String(), conns: map[net.Conn]bool{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns[c], r.conns[up] = true, true
			r.accepted++
			r.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return r, nil
}

// Cut closes every connection relayed so far; new ones still go through.
func (r *Relay) Cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.Close()
	}
	clear(r.conns)
}

func (r *Relay) close() {
	r.ln.Close()
	r.Cut()
}
