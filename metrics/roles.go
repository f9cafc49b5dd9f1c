package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cocoon-go/cocoon/price"
)

// Queue observes an admission queue: how many requests wait, and how long
// each waited. Its methods are safe on a nil *Queue.
type Queue struct {
	depth prometheus.Gauge
	wait  *prometheus.HistogramVec // by outcome
}

func newQueue(f factory) *Queue {
	return &Queue{
		depth: f.gauge("queue_depth", "Requests waiting in the admission queue for a worker's capacity."),
		wait: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: f.name("queue_wait_seconds"),
			Help:    "Time a request waited in the admission queue, by outcome (admitted, timeout, gone).",
			Buckets: waitBuckets}, []string{"outcome"}),
	}
}

// Enter counts a request that starts waiting.
func (q *Queue) Enter() {
	if q != nil {
		q.depth.Inc()
	}
}

// Leave counts a request that stops waiting after d: outcome is
// "admitted" (it got capacity), "timeout" (its deadline passed) or "gone"
// (its caller left).
func (q *Queue) Leave(d time.Duration, outcome string) {
	if q != nil {
		q.depth.Dec()
		q.wait.WithLabelValues(outcome).Observe(d.Seconds())
	}
}

// Proxy is a proxy's collectors. Its methods are safe on a nil *Proxy.
type Proxy struct {
	reg             prometheus.Registerer
	requests        *requests
	queue           *Queue
	receiptsRefused prometheus.Counter
	admitted        *prometheus.CounterVec // by attestation kind
	vouchersIn      *prometheus.CounterVec // by outcome
	vouchersOut     *prometheus.CounterVec // by outcome
	claims          *prometheus.CounterVec // by outcome
}

// NewProxy registers a proxy's collectors on r.
func NewProxy(r prometheus.Registerer) *Proxy {
	f := factory{reg: r, role: "proxy"}
	m := &Proxy{reg: r, requests: newRequests(f, "sealed requests from clients"), queue: newQueue(f),
		receiptsRefused: f.counter("receipts_refused_total", "Worker receipts the proxy refused (bad signature, another request, hashes that do not match what it relayed, usage over the bound): never booked, never paid."),
		admitted:        f.counterVec("workers_admitted_total", "Workers admitted, by the kind of their attestation evidence (tdx, sev-snp, simulated).", "kind"),
		vouchersIn:      f.counterVec("vouchers_received_total", "Client vouchers, by outcome (accepted, refused).", "outcome"),
		vouchersOut:     f.counterVec("vouchers_sent_total", "Vouchers posted to workers, by outcome (delivered, failed).", "outcome"),
		claims:          f.counterVec("claims_total", "Claims of client channels on chain, by outcome (ok, failed).", "outcome"),
	}
	r.MustRegister(m.queue.wait)
	return m
}

// Workers reports the admitted workers as a gauge, read from n at each
// scrape.
func (m *Proxy) Workers(n func() int) {
	if m != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cocoon_proxy_workers_connected",
			Help: "Workers admitted and connected now."}, func() float64 { return float64(n()) }))
	}
}

// Queue is the admission queue of requests waiting for a worker; nil (which
// counts nothing) for a nil *Proxy.
func (m *Proxy) Queue() *Queue {
	if m == nil {
		return nil
	}
	return m.queue
}

// Requests wraps the handler of sealed requests, observing each.
func (m *Proxy) Requests(h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	return m.requests.handler(h)
}

// Tokens counts the tokens of a booked receipt.
func (m *Proxy) Tokens(u price.Usage) {
	if m != nil {
		m.requests.addTokens(u)
	}
}

// ReceiptRefused counts a worker receipt the proxy would not book.
func (m *Proxy) ReceiptRefused() {
	if m != nil {
		m.receiptsRefused.Inc()
	}
}

// WorkerAdmitted counts a worker admitted on evidence of kind.
func (m *Proxy) WorkerAdmitted(kind string) {
	if m != nil {
		m.admitted.WithLabelValues(kind).Inc()
	}
}

// VoucherReceived counts a client's voucher, refused if err is not nil.
func (m *Proxy) VoucherReceived(err error) {
	if m != nil {
		m.vouchersIn.WithLabelValues(outcome(err, "accepted", "refused")).Inc()
	}
}

// VoucherSent counts a voucher posted to a worker, failed if err is not nil.
func (m *Proxy) VoucherSent(err error) {
	if m != nil {
		m.vouchersOut.WithLabelValues(outcome(err, "delivered", "failed")).Inc()
	}
}

// Claimed counts a claim on chain, failed if err is not nil.
func (m *Proxy) Claimed(err error) {
	if m != nil {
		m.claims.WithLabelValues(outcome(err, "ok", "failed")).Inc()
	}
}

// Worker is a worker's collectors. Its methods are safe on a nil *Worker.
type Worker struct {
	requests   *requests
	queue      *Queue
	linked     prometheus.Gauge
	vouchersIn *prometheus.CounterVec // by outcome
	claims     *prometheus.CounterVec // by outcome
}

// NewWorker registers a worker's collectors on r (see ForWorker).
func NewWorker(r prometheus.Registerer) *Worker {
	f := factory{reg: r, role: "worker"}
	m := &Worker{requests: newRequests(f, "sealed requests run"), queue: newQueue(f),
		linked:     f.gauge("proxy_connected", "1 while the worker's link to its proxy is up."),
		vouchersIn: f.counterVec("vouchers_received_total", "Proxy vouchers, by outcome (accepted, refused).", "outcome"),
		claims:     f.counterVec("claims_total", "Claims of proxy channels on chain, by outcome (ok, failed).", "outcome"),
	}
	r.MustRegister(m.queue.wait)
	return m
}

// Queue is the admission queue of requests waiting for the worker's capacity; nil (which
// counts nothing) for a nil *Worker.
func (m *Worker) Queue() *Queue {
	if m == nil {
		return nil
	}
	return m.queue
}

// Requests wraps the handler of sealed requests, observing each.
func (m *Worker) Requests(h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	return m.requests.handler(h)
}

// Tokens counts the tokens of a signed receipt.
func (m *Worker) Tokens(u price.Usage) {
	if m != nil {
		m.requests.addTokens(u)
	}
}

// Linked sets whether the link to the proxy is up.
func (m *Worker) Linked(up bool) {
	if m != nil {
		v := 0.0
		if up {
			v = 1
		}
		m.linked.Set(v)
	}
}

// VoucherReceived counts a proxy's voucher, refused if err is not nil.
func (m *Worker) VoucherReceived(err error) {
	if m != nil {
		m.vouchersIn.WithLabelValues(outcome(err, "accepted", "refused")).Inc()
	}
}

// Claimed counts a claim on chain, failed if err is not nil.
func (m *Worker) Claimed(err error) {
	if m != nil {
		m.claims.WithLabelValues(outcome(err, "ok", "failed")).Inc()
	}
}

// Client is a client's collectors. Its methods are safe on a nil *Client.
type Client struct {
	requests        *requests
	queue           *Queue
	receiptsRefused prometheus.Counter
	vouchersOut     *prometheus.CounterVec // by outcome
}

// NewClient registers a client's collectors on r.
func NewClient(r prometheus.Registerer) *Client {
	f := factory{reg: r, role: "client"}
	m := &Client{requests: newRequests(f, "completions asked by apps"), queue: newQueue(f),
		receiptsRefused: f.counter("receipts_refused_total", "Worker receipts the client refused (and so did not pay): bad signature, another request, an answer that does not match."),
		vouchersOut:     f.counterVec("vouchers_sent_total", "Vouchers posted to the proxy, by outcome (delivered, failed).", "outcome"),
	}
	r.MustRegister(m.queue.wait)
	return m
}

// Queue is the admission queue of app requests, if the client keeps one; nil (which
// counts nothing) for a nil *Client.
func (m *Client) Queue() *Queue {
	if m == nil {
		return nil
	}
	return m.queue
}

// Requests wraps the OpenAI API's handler, observing each POST (a
// completion); other requests pass through uncounted.
func (m *Client) Requests(h http.Handler) http.Handler {
	if m == nil {
		return h
	}
	observed := m.requests.handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			h.ServeHTTP(w, r)
			return
		}
		observed.ServeHTTP(w, r)
	})
}

// Tokens counts the tokens of a paid receipt.
func (m *Client) Tokens(u price.Usage) {
	if m != nil {
		m.requests.addTokens(u)
	}
}

// ReceiptRefused counts a worker receipt the client would not pay.
func (m *Client) ReceiptRefused() {
	if m != nil {
		m.receiptsRefused.Inc()
	}
}

// VoucherSent counts a voucher posted to the proxy, failed if err is not nil.
func (m *Client) VoucherSent(err error) {
	if m != nil {
		m.vouchersOut.WithLabelValues(outcome(err, "delivered", "failed")).Inc()
	}
}
