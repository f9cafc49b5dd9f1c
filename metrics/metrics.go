// Package metrics is what an operator of a Cocoon node watches: Prometheus
// collectors for each role (Proxy, Worker, Client), registered on a
// registry the caller owns, the HTTP middleware that counts a role's
// requests by outcome, and the /metrics and /healthz handlers.
//
// Every metric is named cocoon_<role>_…; docs/operations.md lists them.
// Roles take their collectors as an option (proxy.WithMetrics and the
// like) and call them through nil-safe methods, so a role built without
// metrics pays nothing. Each process keeps its own registry (NewRegistry),
// never the global one: `cocoon up` runs several roles in one process and
// registers them all on one registry, each worker's under a "worker" label
// (ForWorker), and tests build as many as they like.
package metrics

import (
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/price"
)

// NewRegistry returns a registry with the Go runtime's and the process's
// collectors, for the roles of one process.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// ForWorker is r with every metric labelled worker=name, so that several
// workers of one process (`cocoon up`) register on one registry.
func ForWorker(r prometheus.Registerer, name string) prometheus.Registerer {
	return prometheus.WrapRegistererWith(prometheus.Labels{"worker": name}, r)
}

// Handler serves g's metrics in Prometheus' exposition format.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// Health is the body of /healthz: the role, and what it is connected to.
type Health struct {
	Role string `json:"role"`
	// Workers is how many workers a proxy has admitted.
	Workers *int `json:"workers,omitempty"`
	// Proxy says whether a worker's link to its proxy is up.
	Proxy *bool `json:"proxy_connected,omitempty"`
}

// HealthHandler answers 200 with what health returns, as JSON.
func HealthHandler(health func() Health) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(health())
	})
}

// Buckets of the latency histograms, in seconds: from a millisecond (the
// proxy's own overhead) to ten minutes (a long streamed answer).
var (
	latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	waitBuckets    = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
)

// requests observes one role's requests: how many ended in each outcome,
// how many are in flight, how long they took to their first answer byte and
// to the end, the tokens their receipts counted, and those refused for
// money.
type requests struct {
	total    *prometheus.CounterVec // by status class and error code
	inflight prometheus.Gauge
	duration prometheus.Histogram
	ttft     prometheus.Histogram
	tokens   *prometheus.CounterVec // by kind
	credit   *prometheus.CounterVec // by error code
	codes    codes
}

func newRequests(f factory, what string) *requests {
	return &requests{
		total: f.counterVec("requests_total",
			"Requests ("+what+") by outcome: status class (2xx, 4xx, 5xx) and OpenAI error code (empty for a whole answer).",
			"class", "code"),
		inflight: f.gauge("requests_in_flight", "Requests ("+what+") being served."),
		duration: f.histogram("request_duration_seconds", "Time from a request's arrival to the end of its answer.", latencyBuckets),
		ttft: f.histogram("ttft_seconds",
			"Time from a request's arrival to the first byte of its answer: the first token of a stream, the whole answer otherwise.", latencyBuckets),
		tokens: f.counterVec("tokens_total", "Tokens of answered requests, as their signed receipts count them, by kind (prompt, cached, completion).", "kind"),
		credit: f.counterVec("credit_refusals_total",
			"Requests refused for money (OpenAI error type insufficient_quota): no channel, credit or spending limit reached, payer unpaid.", "code"),
	}
}

// addTokens counts u.
func (m *requests) addTokens(u price.Usage) {
	m.tokens.WithLabelValues("prompt").Add(float64(u.PromptTokens))
	m.tokens.WithLabelValues("cached").Add(float64(u.CachedTokens))
	m.tokens.WithLabelValues("completion").Add(float64(u.CompletionTokens))
}

// handler wraps h, observing each request it serves.
func (m *requests) handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o := &observed{ResponseWriter: w, start: time.Now()}
		m.inflight.Inc()
		defer func() {
			m.done(o) // counted before it leaves the gauge: in flight 0 means all counted
			m.inflight.Dec()
		}()
		h.ServeHTTP(o, r)
	})
}

// done counts a request that has ended.
func (m *requests) done(o *observed) {
	status, code := o.status, ""
	if status == 0 {
		status = http.StatusOK // net/http's answer to a handler that wrote nothing
	}
	if o.err != nil {
		status, code = o.err.Status, m.codes.label(o.err.Code)
		if o.err.Type == api.TypeInsufficient {
			m.credit.WithLabelValues(code).Inc()
		}
	}
	m.total.WithLabelValues(strconv.Itoa(status/100)+"xx", code).Inc()
	m.duration.Observe(time.Since(o.start).Seconds())
	if o.wrote && o.err == nil && status < 400 {
		m.ttft.Observe(o.firstAt.Sub(o.start).Seconds())
	}
}

// observed is the response writer of an observed request: it notes the
// status, the first byte of the answer, and the error the answer carries
// (api.WriteError tells it, and so do roles of an error sent after the
// answer began: see api.NoteError). It is used by the handler's goroutine
// only.
type observed struct {
	http.ResponseWriter
	start   time.Time
	status  int
	wrote   bool
	err     *api.Error
	firstAt time.Time
}

func (o *observed) WriteHeader(code int) {
	if o.status == 0 {
		o.status = code
	}
	o.ResponseWriter.WriteHeader(code)
}

func (o *observed) Write(b []byte) (int, error) {
	if o.status == 0 {
		o.status = http.StatusOK
	}
	if !o.wrote && len(b) > 0 {
		o.wrote = true
		o.firstAt = time.Now()
	}
	return o.ResponseWriter.Write(b)
}

// Flush passes a flush on: streamed answers are flushed record by record.
func (o *observed) Flush() {
	if f, ok := o.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the writer underneath.
func (o *observed) Unwrap() http.ResponseWriter { return o.ResponseWriter }

// NoteError takes the error the answer carries; the first one counts.
func (o *observed) NoteError(e *api.Error) {
	if o.err == nil && e != nil {
		o.err = e
	}
}

// maxCodes bounds the distinct error codes a role labels its requests
// with: a proxy relays codes a worker chose, and a client codes a proxy
// chose, and neither may grow the metrics without end.
const maxCodes = 64

// codes keeps the error codes seen, up to maxCodes.
type codes struct {
	mu   sync.Mutex
	seen map[string]bool
}

// label is code as a label value: "other" once maxCodes distinct codes
// have been seen, or for one that is not a short snake_case word.
func (c *codes) label(code string) string {
	if !plain(code) {
		return "other"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[code] {
		return code
	}
	if len(c.seen) >= maxCodes {
		return "other"
	}
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	c.seen[code] = true
	return code
}

// plain reports whether s is 1 to 48 of [a-z0-9_].
func plain(s string) bool {
	if len(s) == 0 || len(s) > 48 {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

// outcome is the label of a payment step's result.
func outcome(err error, ok, failed string) string {
	if err != nil {
		return failed
	}
	return ok
}

// factory makes and registers a role's collectors, named cocoon_<role>_….
type factory struct {
	reg  prometheus.Registerer
	role string
}

func (f factory) name(n string) string { return "cocoon_" + f.role + "_" + n }

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: f.name(name), Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: f.name(name), Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: f.name(name), Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: f.name(name), Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}
