// Package client runs the client role: an OpenAI-compatible HTTP API on
// localhost that seals each request to attested workers, sends it through a
// proxy, opens the sealed answer, checks the worker's signed receipt, and
// only then accepts the cost.
//
// Before it sends a request the client holds the request's worst case
// (seal.MaxCost) against its spending caps — per request, per minute, and
// per API key when apps must present keys (see APIKey) — and books the
// receipt's cost when the answer ends, also when the app has hung up.
package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/metrics"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
)

// Config configures a client.
type Config struct {
	Proxy        string        `json:"proxy"`         // base URL of the proxy, e.g. https://127.0.0.1:10443
	ProxyPin     string        `json:"proxy_pin"`     // hex SHA-256 of the proxy's TLS key; empty accepts any
	MaxPrice     price.Price   `json:"max_price"`     // the most this client pays per token
	Fanout       int           `json:"fanout"`        // workers each request is sealed to (k)
	RequestTTL   time.Duration `json:"request_ttl"`   // how long a sealed request stays valid
	DirectoryTTL time.Duration `json:"directory_ttl"` // how long the worker list is reused
	// MaxRequestCost refuses, before sending it, a request that may cost
	// more nanoTON than this (see seal.MaxCost); 0: DefaultMaxRequestCost.
	MaxRequestCost uint64 `json:"max_request_cost,omitempty"`
	// MaxSpendPerMinute bounds, in nanoTON, what the costs booked in the
	// last minute and the worst cases of the requests in flight add up to;
	// 0: DefaultMaxSpendPerMinute.
	MaxSpendPerMinute uint64 `json:"max_spend_per_minute,omitempty"`
	// APIKeys, if any, are required of every app (Authorization: Bearer),
	// each with its own spending limit. Without them anyone who reaches
	// the API spends the client's deposit.
	APIKeys []APIKey `json:"api_keys,omitempty"`
}

// DefaultMaxPrice accepts up to 2000 nanoTON for any token.
var DefaultMaxPrice = price.Price{PerToken: 2000, PromptMul: price.One, CachedMul: price.One, CompletionMul: price.One}

// Client serves the OpenAI API and forwards sealed requests to a proxy.
type Client struct {
	cfg     Config
	key     ed25519.PrivateKey
	attest  *attest.Cache
	http    *http.Client
	journal accounts.Ledger
	log     *slog.Logger
	keys    []keyHash // the API keys' hashes; none: no key is asked for
	spend   *spending

	mu      sync.Mutex
	workers []*worker
	fetched time.Time
	// fetching is closed when the directory fetch under way ends; nil when
	// none is. Only one fetch runs at a time, outside mu.
	fetching chan struct{}
	fetchErr error // why the last fetch failed; nil after a good one
	refused  map[[32]byte]bool
	payee    *wire.Payee // how to pay the proxy, from its directory
	seen     [32]byte    // TLS key hash of the proxy that served the directory (unpinned clients)

	encaps encapPool

	payments *payments.Stream // nil: the client pays nobody (a proxy serving it unpaid)
	pending  *pendingPayments // WithPayments' choice, set up once every option is applied
	metrics  *metrics.Client
}

// maxRefused bounds how many refused evidences the client remembers, only
// so as to log each once: a proxy can list endless distinct bad ones.
const maxRefused = 1024

// directoryTimeout bounds one directory fetch with its evidence checks.
const directoryTimeout = 30 * time.Second

// worker is a verified entry of the proxy's directory.
type worker struct {
	v    *attest.Verified
	info wire.WorkerInfo
}

// ErrProxyURL is the error for a Config.Proxy that is not an http:// or
// https:// URL of a host.
var ErrProxyURL = errors.New("client: proxy must be a URL such as https://HOST:PORT")

// Option sets what a Client needs beyond its Config, at construction.
type Option func(*Client)

// New returns a client that signs with key, accepts workers whose evidence
// passes checker, and books what it pays in journal.
func New(cfg Config, key ed25519.PrivateKey, checker *attest.Cache, journal accounts.Ledger, log *slog.Logger, opts ...Option) (*Client, error) {
	proxyURL, err := parseProxyURL(cfg.Proxy)
	if err != nil {
		return nil, err
	}
	cfg.Proxy = proxyURL
	if cfg.Fanout <= 0 {
		cfg.Fanout = 3
	}
	cfg.Fanout = min(cfg.Fanout, 8)
	if cfg.RequestTTL <= 0 {
		cfg.RequestTTL = 5 * time.Minute
	}
	if cfg.DirectoryTTL <= 0 {
		cfg.DirectoryTTL = 2 * time.Second
	}
	if cfg.MaxPrice == (price.Price{}) {
		cfg.MaxPrice = DefaultMaxPrice
	}
	if cfg.MaxRequestCost == 0 {
		cfg.MaxRequestCost = DefaultMaxRequestCost
	}
	if cfg.MaxSpendPerMinute == 0 {
		cfg.MaxSpendPerMinute = DefaultMaxSpendPerMinute
	}
	keys, err := parseAPIKeys(cfg.APIKeys)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	tcfg, err := identity.PinnedConfig(cfg.ProxyPin)
	if err != nil {
		return nil, err
	}
	if cfg.ProxyPin == "" {
		log.Warn("no proxy pin configured: accepting any proxy certificate (prompts stay sealed; metadata does not)")
	}
	tr := &http.Transport{TLSClientConfig: tcfg, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}
	c := &Client{cfg: cfg, key: key, attest: checker, journal: journal, log: log, keys: keys, spend: newSpending(cfg, journal),
		http: &http.Client{Transport: tr}, refused: map[[32]byte]bool{}}
	for _, o := range opts {
		o(c)
	}
	// Payments start after every option, so that their first voucher
	// already meets the metrics.
	if c.pending != nil {
		c.payWith(c.pending)
	}
	return c, nil
}

// parseProxyURL returns s, an http:// or https:// URL of a host with no
// path beyond "/", without its trailing slash.
func parseProxyURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w, not %q: %w", ErrProxyURL, s, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%w (or http://HOST:PORT), not %q", ErrProxyURL, s)
	}
	return strings.TrimRight(s, "/"), nil
}

// Handler serves the OpenAI API under /v1, to apps that present one of
// the client's API keys if it has any.
func (c *Client) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", c.serveModels)
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, api.EndpointChat) })
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { c.serve(w, r, api.EndpointCompletion) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, api.Errorf(http.StatusNotFound, api.TypeNotFound, "unknown_url", "unknown URL %s %s", r.Method, r.URL.Path))
	})
	var h http.Handler = mux
	if len(c.keys) > 0 {
		h = c.authorize(mux)
	}
	return c.metrics.Requests(h)
}

// directory returns the verified workers, refreshing the list from the proxy
// when it is older than DirectoryTTL. One fetch runs at a time, outside
// c.mu: the request that finds the list stale waits for the fresh one, and
// requests arriving meanwhile use the previous verified list (they wait
// only when there is none yet).
func (c *Client) directory(ctx context.Context) ([]*worker, error) {
	c.mu.Lock()
	if !c.fetched.IsZero() && time.Since(c.fetched) < c.cfg.DirectoryTTL {
		defer c.mu.Unlock()
		return c.workers, nil
	}
	done, started := c.fetching, false
	if done == nil {
		done, started = make(chan struct{}), true
		c.fetching = done
		go c.refresh(done)
	}
	if !started && !c.fetched.IsZero() {
		defer c.mu.Unlock()
		return c.workers, nil
	}
	c.mu.Unlock()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("asking proxy for workers: %w", ctx.Err())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fetchErr != nil {
		return nil, c.fetchErr
	}
	return c.workers, nil
}

// refresh fetches and verifies the proxy's directory, installs it, and
// closes done. It runs on its own context, so a request that gives up
// waiting does not cut the fetch others wait for.
func (c *Client) refresh(done chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), directoryTimeout)
	defer cancel()
	list, d, seen, err := c.fetchDirectory(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fetching, c.fetchErr = nil, err
	close(done)
	if err != nil {
		return
	}
	c.workers, c.fetched, c.payee = list, time.Now(), d.Payee
	if seen != ([32]byte{}) {
		c.seen = seen
	}
	c.encaps.keep(list)
}

// fetchDirectory asks the proxy for its workers and keeps those whose
// evidence passes the policy. seen is the TLS key the proxy showed.
func (c *Client) fetchDirectory(ctx context.Context) (list []*worker, d *wire.Directory, seen [32]byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.Proxy+wire.PathDirectory, nil)
	if err != nil {
		return nil, nil, seen, fmt.Errorf("asking proxy for workers: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, seen, fmt.Errorf("asking proxy for workers: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, seen, fmt.Errorf("asking proxy for workers: HTTP %d", resp.StatusCode)
	}
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		seen = identity.KeyHash(resp.TLS.PeerCertificates[0])
	}
	d = new(wire.Directory)
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(d); err != nil {
		return nil, nil, seen, fmt.Errorf("asking proxy for workers: %w", err)
	}
	for _, info := range d.Workers {
		v, err := c.attest.Check(info.Evidence)
		if err != nil {
			c.noteRefused(info.Evidence, err)
			continue
		}
		list = append(list, &worker{v: v, info: info})
	}
	return list, d, seen, nil
}

// noteRefused logs a worker refused for its evidence, once per evidence
// among the last maxRefused.
func (c *Client) noteRefused(evidence []byte, err error) {
	h := sha256.Sum256(evidence)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refused[h] {
		return
	}
	if len(c.refused) >= maxRefused {
		clear(c.refused)
	}
	c.refused[h] = true
	c.log.Warn("refusing worker: evidence fails policy", "err", err)
}

// encapPool keeps a few HPKE encapsulations ready for each worker this
// client has sealed to, made in the background between requests, so that the
// KEM (most of the cost of sealing) is off a request's critical path.
type encapPool struct {
	mu      sync.Mutex
	ready   map[[32]byte][]*seal.Prepared
	filling map[[32]byte]bool
}

// encapDepth is how many encapsulations are kept ready per worker.
const encapDepth = 4

// take returns a prepared encapsulation to r, making one now if none is
// ready, and starts refilling the pool for r.
func (p *encapPool) take(r seal.Recipient) (*seal.Prepared, error) {
	p.mu.Lock()
	if p.ready == nil {
		p.ready, p.filling = map[[32]byte][]*seal.Prepared{}, map[[32]byte]bool{}
	}
	var got *seal.Prepared
	if list := p.ready[r.KeyID]; len(list) > 0 {
		got, p.ready[r.KeyID] = list[len(list)-1], list[:len(list)-1]
	}
	if !p.filling[r.KeyID] {
		p.filling[r.KeyID] = true
		go p.fill(r)
	}
	p.mu.Unlock()
	if got != nil {
		return got, nil
	}
	return seal.Prepare(r)
}

func (p *encapPool) fill(r seal.Recipient) {
	for {
		p.mu.Lock()
		_, wanted := p.filling[r.KeyID]
		if !wanted || len(p.ready[r.KeyID]) >= encapDepth {
			delete(p.filling, r.KeyID)
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		prep, err := seal.Prepare(r)
		p.mu.Lock()
		if err != nil {
			delete(p.filling, r.KeyID)
			p.mu.Unlock()
			return
		}
		if _, wanted := p.filling[r.KeyID]; wanted {
			p.ready[r.KeyID] = append(p.ready[r.KeyID], prep)
		}
		p.mu.Unlock()
	}
}

// keep drops what is ready for workers no longer in the directory.
func (p *encapPool) keep(list []*worker) {
	live := map[[32]byte]bool{}
	for _, w := range list {
		live[w.v.KeyID] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.ready {
		if !live[id] {
			delete(p.ready, id)
			delete(p.filling, id)
		}
	}
}

func (c *Client) serveModels(w http.ResponseWriter, r *http.Request) {
	workers, err := c.directory(r.Context())
	if err != nil {
		api.WriteError(w, api.Errorf(http.StatusServiceUnavailable, api.TypeUnavailable, "proxy_unreachable", "%v", err))
		return
	}
	list := api.ModelList{Object: api.ObjectList, Data: []api.Model{}}
	seen := map[string]bool{}
	for _, wk := range workers {
		for _, m := range wk.info.Models {
			if !seen[m] {
				seen[m] = true
				list.Data = append(list.Data, api.Model{ID: m, Object: api.ObjectModel, Created: wk.v.Bundle.Created, OwnedBy: "cocoon"})
			}
		}
	}
	sort.Slice(list.Data, func(i, j int) bool { return list.Data[i].ID < list.Data[j].ID })
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(list)
}

// pick chooses up to Fanout workers for model, least loaded first.
func (c *Client) pick(workers []*worker, model string) ([]*worker, *api.Error) {
	var serving, cands []*worker
	for _, wk := range workers {
		if slices.Contains(wk.info.Models, model) {
			serving = append(serving, wk)
			if wk.info.Price.Within(c.cfg.MaxPrice) {
				cands = append(cands, wk)
			}
		}
	}
	switch {
	case len(workers) == 0:
		return nil, api.Errorf(http.StatusServiceUnavailable, api.TypeUnavailable, "no_worker", "no attested worker is available")
	case len(serving) == 0:
		return nil, api.Errorf(http.StatusNotFound, api.TypeNotFound, "model_not_found", "the model %q does not exist", model)
	case len(cands) == 0:
		return nil, api.Errorf(http.StatusServiceUnavailable, api.TypeUnavailable, "no_worker", "no worker serves %q within the price limit", model)
	}
	rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	slices.SortStableFunc(cands, func(a, b *worker) int {
		return a.info.InFlight*b.info.Capacity - b.info.InFlight*a.info.Capacity
	})
	return cands[:min(len(cands), c.cfg.Fanout)], nil
}

// serve handles one chat or text completion.
func (c *Client) serve(w http.ResponseWriter, r *http.Request, endpoint string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			api.WriteError(w, api.Errorf(http.StatusRequestEntityTooLarge, api.TypeInvalidRequest, "request_too_large", "request body is over %d bytes", api.MaxBodyBytes))
			return
		}
		api.WriteError(w, api.BadRequest("", "reading request body: "+err.Error()))
		return
	}
	req, err := api.ParseRequest(endpoint, body)
	if err != nil {
		api.WriteError(w, err.(*api.Error))
		return
	}
	h := seal.Header{
		Endpoint:  req.Endpoint,
		Model:     req.Model,
		MaxTokens: uint32(req.Limit()), // ParseRequest bounds it by seal.MaxTokenLimit
		Stream:    req.Stream,
		PriceCap:  c.cfg.MaxPrice,
		ClientKey: c.key.Public().(ed25519.PublicKey),
	}
	key, _ := r.Context().Value(apiKeyCtx{}).(string)
	spend, aerr := c.spend.hold(key, seal.MaxCost(&h, len(body)))
	if aerr != nil {
		api.WriteError(w, aerr)
		return
	}
	defer spend.release() // unless the receipt booked it
	workers, err := c.directory(r.Context())
	if err != nil {
		api.WriteError(w, api.Errorf(http.StatusServiceUnavailable, api.TypeUnavailable, "proxy_unreachable", "%v", err))
		return
	}
	chosen, aerr := c.pick(workers, req.Model)
	if aerr != nil {
		api.WriteError(w, aerr)
		return
	}
	a := &answer{c: c, w: w, req: req, h: &h, chosen: chosen, spend: spend, log: c.log}
	if err := a.forward(r.Context(), body); err != nil {
		a.log.Debug("request failed", "status", err.Status, "code", err.Code)
		api.WriteError(w, err)
	}
}

// hangUpGrace bounds how long the client keeps reading an answer after its
// app has hung up, to check its receipt and pay for it.
const hangUpGrace = 5 * time.Minute

// forward seals the request to the chosen workers, sends it through the
// proxy and relays the opened answer. It returns an error only while
// nothing has been written to the app yet.
//
// The exchange with the proxy outlives the app's request by up to
// hangUpGrace: an app that hangs up mid-answer has still asked for it, and
// the worker still serves it and the proxy books it, so an honest client
// reads on, checks the receipt and pays for it.
func (a *answer) forward(ctx context.Context, body []byte) *api.Error {
	c := a.c
	proxy, err := c.proxyKey()
	if err != nil {
		return api.Errorf(http.StatusBadGateway, api.TypeServer, "proxy_unknown", "%v", err)
	}
	a.h.Proxy = proxy
	a.h.Expires = time.Now().Add(c.cfg.RequestTTL).Unix()
	crand.Read(a.h.RequestID[:])
	a.log = c.log.With("request_id", hex.EncodeToString(a.h.RequestID[:]))
	to := make([]*seal.Prepared, len(a.chosen))
	for i, wk := range a.chosen {
		p, err := c.encaps.take(seal.Recipient{KeyID: wk.v.KeyID, PublicKey: wk.v.Bundle.HPKEKey})
		if err != nil {
			return api.Errorf(http.StatusInternalServerError, api.TypeServer, "seal_failed", "sealing request: %v", err)
		}
		to[i] = p
	}
	raw, sess, err := seal.SealPrepared(*a.h, body, to, c.key)
	if err != nil {
		return api.Errorf(http.StatusInternalServerError, api.TypeServer, "seal_failed", "sealing request: %v", err)
	}
	a.sess = sess
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(hangUpGrace, cancel) })
	defer stop()
	hreq, err := http.NewRequestWithContext(pctx, http.MethodPost, c.cfg.Proxy+wire.PathRequests, bytes.NewReader(raw))
	if err != nil {
		return api.Errorf(http.StatusInternalServerError, api.TypeServer, "proxy_unknown", "sending request to proxy: %v", err)
	}
	hreq.Header.Set("Content-Type", wire.ContentEnvelope)
	resp, err := c.http.Do(hreq)
	if err != nil {
		return api.Errorf(http.StatusBadGateway, api.TypeServer, "proxy_unreachable", "sending request to proxy: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Room for a worker's sealed error (a record, base64) in the JSON.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2*seal.MaxRecord))
		return a.opened(api.ParseError(resp.StatusCode, b))
	}
	return a.relay(seal.NewRecordReader(resp.Body))
}

// proxyKey is the TLS key hash of the proxy every envelope names: the pin,
// or, unpinned, the key the proxy showed when it served the directory. A
// man in the middle on a later connection then gets envelopes that the
// proxy behind it refuses.
func (c *Client) proxyKey() ([32]byte, error) {
	if c.cfg.ProxyPin != "" {
		b, err := hex.DecodeString(c.cfg.ProxyPin)
		if err != nil || len(b) != sha256.Size {
			return [32]byte{}, fmt.Errorf("proxy pin %q is not a hex SHA-256", c.cfg.ProxyPin)
		}
		return [32]byte(b), nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == ([32]byte{}) {
		return [32]byte{}, errors.New("the proxy has shown no TLS certificate to bind the request to")
	}
	return c.seen, nil
}

// answer is one response being opened and relayed to the app.
type answer struct {
	c      *Client
	w      http.ResponseWriter
	req    *api.Request
	h      *seal.Header
	sess   *seal.ClientSession
	chosen []*worker
	spend  *spend       // the request's hold on the client's spending caps
	log    *slog.Logger // with the request's id once it is sealed, as the proxy and the worker log it

	started bool   // SSE headers written
	whole   []byte // the non-streamed response object
}

func (a *answer) relay(rr *seal.RecordReader) *api.Error {
	for {
		typ, payload, err := rr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the answer ended before its receipt")
			}
			return a.fail(api.Errorf(http.StatusBadGateway, api.TypeServer, "stream_broken", "%v", err))
		}
		switch typ {
		case seal.RecordChunk:
			plain, final, err := a.sess.OpenChunk(payload)
			if err != nil {
				return a.fail(api.Errorf(http.StatusBadGateway, api.TypeServer, "bad_chunk", "answer failed its integrity check: %v", err))
			}
			if final || len(plain) == 0 {
				continue
			}
			if !a.req.Stream {
				if a.whole != nil {
					return a.fail(api.Errorf(http.StatusBadGateway, api.TypeServer, "bad_chunk", "worker sent more than one response object"))
				}
				a.whole = plain
				continue
			}
			a.event(plain)
		case seal.RecordError:
			erec, err := wire.ParseErrorRecord(payload)
			if err != nil {
				return a.fail(api.Errorf(http.StatusBadGateway, api.TypeServer, "stream_broken", "%v", err))
			}
			return a.fail(a.opened(&erec.Error))
		case seal.RecordReceipt:
			rc, err := a.check(payload)
			if err != nil {
				a.c.metrics.ReceiptRefused()
				a.log.Error("refusing receipt", "err", err)
				return a.fail(api.Errorf(http.StatusBadGateway, api.TypeServer, "bad_receipt", "worker receipt refused: %v", err))
			}
			return a.finish(rc)
		}
	}
}

// opened returns the error a worker sealed into e (see seal.WorkerSession.
// SealError), or e itself when nothing is sealed in it or it does not open.
// What it returns has nothing sealed left in it: apps never see that field.
func (a *answer) opened(e *api.Error) *api.Error {
	sealed := e.Sealed
	e.Sealed = nil
	if sealed == nil {
		return e
	}
	detail, err := a.sess.OpenError(sealed)
	if err != nil {
		a.log.Warn("worker's sealed error detail does not open", "err", err)
		return e
	}
	inner, err := wire.ParseErrorRecord(detail)
	if err != nil {
		a.log.Warn("worker's sealed error detail is not an error record", "err", err)
		return e
	}
	inner.Sealed = nil
	return &inner.Error
}

// check verifies a receipt against what this client sent and received.
func (a *answer) check(b []byte) (*seal.Receipt, error) {
	rc, err := seal.ParseReceipt(b)
	if err != nil {
		return nil, err
	}
	for _, wk := range a.chosen {
		if wk.v.KeyID == rc.Worker {
			if err := a.sess.CheckReceipt(rc, wk.v.Bundle.SigningKey); err != nil {
				return nil, err
			}
			return rc, nil
		}
	}
	return nil, errors.New("receipt is from a worker the request was not sealed to")
}

// finish hands the app the end of the answer, with usage taken from the
// verified receipt, and books the cost.
func (a *answer) finish(rc *seal.Receipt) *api.Error {
	// Book first: once the app has the whole answer, it may look at the books.
	if a.c.journal != nil {
		err := a.c.journal.Record(accounts.Entry{
			Time:      rc.Time,
			RequestID: hex.EncodeToString(rc.RequestID[:]),
			Client:    hex.EncodeToString(a.h.ClientKey),
			Worker:    hex.EncodeToString(rc.Worker[:]),
			Model:     rc.Model,
			Usage:     rc.Usage,
			Cost:      rc.Cost.Total,
			APIKey:    a.spend.key,
		})
		if err != nil {
			a.log.Error("booking receipt", "err", err)
		}
	}
	a.c.metrics.Tokens(rc.Usage)
	a.log.Debug("request served", "cost", rc.Cost.Total)
	a.spend.book(rc.Cost.Total)
	a.c.pay(rc.Cost.Total)
	usage := api.NewUsage(rc.Usage, rc.Cost)
	if a.req.Stream {
		if a.req.IncludeUsage() {
			a.event(a.usageChunk(rc, usage))
		}
		if !a.started {
			a.startStream()
		}
		io.WriteString(a.w, "data: [DONE]\n\n")
		a.flush()
	} else {
		if a.whole == nil {
			return api.Errorf(http.StatusBadGateway, api.TypeServer, "empty_answer", "worker sent no response object")
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(a.whole, &obj); err != nil {
			return api.Errorf(http.StatusBadGateway, api.TypeServer, "bad_answer", "worker's response is not JSON: %v", err)
		}
		obj["usage"], _ = json.Marshal(usage)
		out, _ := json.Marshal(obj)
		a.w.Header().Set("Content-Type", "application/json")
		a.w.Write(append(out, '\n'))
	}
	return nil
}

func (a *answer) usageChunk(rc *seal.Receipt, u *api.Usage) []byte {
	id := api.CompletionID(a.h.Endpoint, a.h.RequestID)
	var v any
	if a.h.Endpoint == api.EndpointCompletion {
		v = api.TextCompletion{ID: id, Object: api.ObjectTextCompletion, Created: rc.Time, Model: rc.Model, Choices: []api.TextChoice{}, Usage: u}
	} else {
		v = api.ChatCompletionChunk{ID: id, Object: api.ObjectChatCompletionChunk, Created: rc.Time, Model: rc.Model, Choices: []api.ChatChunkChoice{}, Usage: u}
	}
	b, _ := json.Marshal(v)
	return b
}

// fail reports e to the app: as the HTTP response if nothing was sent yet,
// else as an SSE error event, which OpenAI SDKs raise as an error, so a cut
// answer never looks like a short one.
func (a *answer) fail(e *api.Error) *api.Error {
	if !a.started {
		return e
	}
	api.NoteError(a.w, e)
	a.event(api.MarshalError(e))
	return nil
}

func (a *answer) startStream() {
	h := a.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	a.w.WriteHeader(http.StatusOK)
	a.started = true
}

func (a *answer) event(data []byte) {
	if !a.started {
		a.startStream()
	}
	buf := make([]byte, 0, len(data)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	a.w.Write(buf)
	a.flush()
}

func (a *answer) flush() {
	if f, ok := a.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Account is this client's account id at proxies: its hex Ed25519 public key.
func (c *Client) Account() string {
	return hex.EncodeToString(c.key.Public().(ed25519.PublicKey))
}

// Directory returns the workers this client has verified, refreshing the
// list from the proxy when it is stale.
func (c *Client) Directory(ctx context.Context) ([]*attest.Verified, error) {
	ws, err := c.directory(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*attest.Verified, len(ws))
	for i, w := range ws {
		out[i] = w.v
	}
	return out, nil
}

// ProxyPayee says how to pay the proxy by channel, from its directory; nil
// if it takes no payments.
func (c *Client) ProxyPayee(ctx context.Context) (*wire.Payee, error) {
	if _, err := c.directory(ctx); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.payee, nil
}
