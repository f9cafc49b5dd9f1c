package metrics_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/internal/testnet"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/metrics"
)

// post sends a chat completion to the network's client and reads the answer.
func post(t *testing.T, n *testnet.Net, body string) int {
	t.Helper()
	resp, err := http.Post(n.BaseURL+"/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// settled scrapes reg once no role has a request in flight: a proxy or a
// worker may still be ending its request when the app has its answer.
func settled(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	idle := func(m map[string]float64) bool {
		for s, v := range m {
			if strings.Contains(s, "_requests_in_flight") && v != 0 {
				return false
			}
		}
		return true
	}
	m := waitfor.Value(func() map[string]float64 { return scrape(t, reg) }, idle)
	if !idle(m) {
		t.Fatalf("requests still in flight: %v", m)
	}
	return m
}

// scrape reads /metrics as Prometheus would, into series → value.
func scrape(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

const (
	small = `{"model":"fake-model","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
	// Its worst case (100k tokens at the client's price cap) is over the
	// proxy's credit limit below.
	huge = `{"model":"fake-model","max_tokens":100000,"messages":[{"role":"user","content":"hi"}]}`
)

func TestScrapeAfterRequests(t *testing.T) {
	reg := metrics.NewRegistry()
	n := testnet.Start(t, testnet.Options{Engines: []engine.Engine{&enginetest.FakeEngine{Text: "four words of answer"}},
		CreditLimit: 10_000_000, Metrics: reg})
	if got := post(t, n, small); got != http.StatusOK {
		t.Fatalf("small request: HTTP %d", got)
	}
	if got := post(t, n, strings.Replace(small, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)); got != http.StatusOK {
		t.Fatalf("streamed request: HTTP %d", got)
	}
	if got := post(t, n, huge); got != http.StatusPaymentRequired {
		t.Fatalf("request over the credit: HTTP %d, want 402", got)
	}
	m := settled(t, reg)
	for series, want := range map[string]float64{
		`cocoon_client_requests_total{class="2xx",code=""}`:                   2,
		`cocoon_client_requests_total{class="4xx",code="credit_limit"}`:       1,
		`cocoon_proxy_requests_total{class="2xx",code=""}`:                    2,
		`cocoon_proxy_requests_total{class="4xx",code="credit_limit"}`:        1,
		`cocoon_proxy_credit_refusals_total{code="credit_limit"}`:             1,
		`cocoon_worker_requests_total{class="2xx",code="",worker="worker-a"}`: 2,
		`cocoon_proxy_request_duration_seconds_count`:                         3,
		`cocoon_proxy_ttft_seconds_count`:                                     2,
		`cocoon_client_ttft_seconds_count`:                                    2,
		`cocoon_worker_ttft_seconds_count{worker="worker-a"}`:                 2,
		`cocoon_proxy_requests_in_flight`:                                     0,
		`cocoon_client_requests_in_flight`:                                    0,
		`cocoon_proxy_workers_admitted_total{kind="simulated"}`:               1,
		`cocoon_proxy_workers_connected`:                                      1,
		`cocoon_worker_proxy_connected{worker="worker-a"}`:                    1,
		`cocoon_proxy_receipts_refused_total`:                                 0,
		`cocoon_client_receipts_refused_total`:                                0,
		`cocoon_proxy_queue_depth`:                                            0,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present: %v), want %v", series, got, ok, want)
		}
	}
	// Every role counted the same tokens, from the same receipts.
	completion := m[`cocoon_client_tokens_total{kind="completion"}`]
	if completion == 0 {
		t.Errorf("no completion tokens counted")
	}
	for _, s := range []string{`cocoon_proxy_tokens_total{kind="completion"}`, `cocoon_worker_tokens_total{kind="completion",worker="worker-a"}`} {
		if m[s] != completion {
			t.Errorf("%s = %v, the client counted %v", s, m[s], completion)
		}
	}
	if m[`cocoon_client_tokens_total{kind="prompt"}`] == 0 {
		t.Errorf("no prompt tokens counted")
	}
	if m["go_goroutines"] == 0 {
		t.Errorf("the Go runtime's collectors are missing")
	}
}

// A worker's error sent after the answer began (an error record after a
// 200, an SSE error event) counts as the error it is, in every role.
func TestErrorMidStreamCounted(t *testing.T) {
	reg := metrics.NewRegistry()
	n := testnet.Start(t, testnet.Options{Engines: []engine.Engine{&enginetest.FakeEngine{Fail: true, FailAfter: 2}}, Metrics: reg})
	if got := post(t, n, strings.Replace(small, `"max_tokens"`, `"stream":true,"max_tokens"`, 1)); got != http.StatusOK {
		t.Fatalf("streamed request: HTTP %d, want 200 and an error event", got)
	}
	m := settled(t, reg)
	for _, series := range []string{
		`cocoon_client_requests_total{class="5xx",code="engine_failed"}`,
		`cocoon_proxy_requests_total{class="5xx",code="engine_failed"}`,
		`cocoon_worker_requests_total{class="5xx",code="engine_failed",worker="worker-a"}`,
	} {
		if m[series] != 1 {
			t.Errorf("%s = %v, want 1", series, m[series])
		}
	}
	if m[`cocoon_client_ttft_seconds_count`] != 0 {
		t.Errorf("a failed answer's first byte counted as a time to first token")
	}
}

// logged keeps, per role, the request ids its log lines carried.
type logged struct {
	mu  sync.Mutex
	ids map[string]map[string]bool
}

type idHandler struct {
	l     *logged
	attrs []slog.Attr
}

func (h idHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h idHandler) Handle(_ context.Context, r slog.Record) error {
	role, id := "", ""
	see := func(a slog.Attr) bool {
		switch a.Key {
		case "role":
			role = a.Value.String()
		case "request_id":
			id = a.Value.String()
		}
		return true
	}
	for _, a := range h.attrs {
		see(a)
	}
	r.Attrs(see)
	if id != "" {
		h.l.mu.Lock()
		if h.l.ids[role] == nil {
			h.l.ids[role] = map[string]bool{}
		}
		h.l.ids[role][id] = true
		h.l.mu.Unlock()
	}
	return nil
}

func (h idHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return idHandler{l: h.l, attrs: append(append([]slog.Attr{}, h.attrs...), as...)}
}

func (h idHandler) WithGroup(string) slog.Handler { return h }

func TestRequestIDInEveryRolesLog(t *testing.T) {
	l := &logged{ids: map[string]map[string]bool{}}
	n := testnet.Start(t, testnet.Options{Engines: []engine.Engine{&enginetest.FakeEngine{}}, Log: slog.New(idHandler{l: l})})
	if got := post(t, n, small); got != http.StatusOK {
		t.Fatalf("HTTP %d", got)
	}
	// The proxy and the worker may log the end of the request after the
	// app has its answer.
	roles := []string{"client", "proxy", "worker-a"}
	waitfor.Holds(func() bool { // the checks below say which role did not
		l.mu.Lock()
		defer l.mu.Unlock()
		all := true
		for _, role := range roles {
			all = all && len(l.ids[role]) > 0
		}
		return all
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	var id string
	for _, role := range roles {
		if len(l.ids[role]) != 1 {
			t.Fatalf("%s logged request ids %v, want one", role, l.ids[role])
		}
		for got := range l.ids[role] {
			if id == "" {
				id = got
			}
			if got != id || len(got) != 32 {
				t.Errorf("%s logged request id %q; the client logged %q", role, got, id)
			}
		}
	}
}

func TestHealthHandler(t *testing.T) {
	up := true
	rec := httptest.NewRecorder()
	metrics.HealthHandler(func() metrics.Health { return metrics.Health{Role: "worker", Proxy: &up} }).
		ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != `{"role":"worker","proxy_connected":true}` {
		t.Fatalf("healthz: %d %s", rec.Code, rec.Body)
	}
}

// Codes from other parties (a worker's, relayed) cannot grow the metrics
// without end.
func TestCodesBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := metrics.NewProxy(reg)
	h := m.Requests(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api.WriteError(w, api.Errorf(http.StatusBadGateway, api.TypeServer, r.URL.Query().Get("code"), "relayed"))
	}))
	for i := range 200 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/?code=code_"+strconv.Itoa(i), nil))
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/?code=Not%20A%20Code", nil))
	got := scrape(t, reg)
	series := 0
	for s := range got {
		if strings.HasPrefix(s, "cocoon_proxy_requests_total{") {
			series++
		}
	}
	if series > 65 || got[`cocoon_proxy_requests_total{class="5xx",code="other"}`] != 200-64+1 {
		t.Errorf("%d series; other = %v", series, got[`cocoon_proxy_requests_total{class="5xx",code="other"}`])
	}
}
