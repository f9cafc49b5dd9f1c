package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newEngine(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(&Engine{})
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

// A run of a given count sends exactly that many requests, streams the
// given share of them, and counts the tokens the engine reported.
func TestRunCountsRequestsAndTokens(t *testing.T) {
	r, err := Run(context.Background(), Config{BaseURL: newEngine(t), Concurrency: 4, Requests: 20,
		StreamShare: 0.5, PromptWords: 8, MaxTokens: 5})
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != DefaultEngineModel {
		t.Errorf("model %q, want the engine's first, %q", r.Model, DefaultEngineModel)
	}
	if r.Requests != 20 || r.Succeeded != 20 || r.Failed != 0 || len(r.Errors) != 0 || r.Streamed != 10 {
		t.Fatalf("requests %d ok %d failed %d streamed %d errors %v", r.Requests, r.Succeeded, r.Failed, r.Streamed, r.Errors)
	}
	if r.CompletionTokens != 20*5 || r.PromptTokens != 20*8 {
		t.Errorf("tokens: %d out, %d prompt; want 100, 160", r.CompletionTokens, r.PromptTokens)
	}
	if r.Latency.N != 20 || r.TTFT.N != 10 {
		t.Errorf("latency over %d samples, TTFT over %d; want 20, 10", r.Latency.N, r.TTFT.N)
	}
	if r.RequestsPerSecond <= 0 || math.Abs(r.OutputTokensPerSecond-5*r.RequestsPerSecond) > 1e-6*r.OutputTokensPerSecond {
		t.Errorf("%.1f req/s, %.1f tok/s", r.RequestsPerSecond, r.OutputTokensPerSecond)
	}
	if !(r.Latency.Min <= r.Latency.P50 && r.Latency.P50 <= r.Latency.P99 && r.Latency.P99 <= r.Latency.Max) {
		t.Errorf("latency quantiles out of order: %+v", r.Latency)
	}
}

func TestStreamsSpreadEvenly(t *testing.T) {
	for _, share := range []float64{0, 0.25, 0.5, 1} {
		n, run := 0, 0
		for i := range 100 {
			if streams(i, share) {
				n++
			}
			if i < 4 && streams(i, share) {
				run++
			}
		}
		if n != int(100*share) || run != int(4*share) {
			t.Errorf("share %v: %d of 100 stream, %d of the first 4", share, n, run)
		}
	}
}

func TestQuantilesAreExactByNearestRank(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, ms(i))
	}
	rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
	q := NewQuantiles(s)
	want := Quantiles{N: 100, Min: ms(1), Mean: 50*time.Millisecond + 500*time.Microsecond, P50: ms(50), P90: ms(90), P99: ms(99), Max: ms(100)}
	if q != want {
		t.Errorf("1..100 ms: %+v, want %+v", q, want)
	}
	// The median of an even count is the lower middle sample, not an average.
	if q := NewQuantiles([]time.Duration{ms(4), ms(1), ms(3), ms(2)}); q.P50 != ms(2) || q.P90 != ms(4) || q.P99 != ms(4) {
		t.Errorf("1..4 ms: %+v", q)
	}
	if q := NewQuantiles([]time.Duration{ms(7)}); q.P50 != ms(7) || q.P99 != ms(7) || q.Min != ms(7) {
		t.Errorf("one sample: %+v", q)
	}
	if q := NewQuantiles(nil); q != (Quantiles{}) {
		t.Errorf("no samples: %+v", q)
	}
	b, _ := json.Marshal(want)
	var back Quantiles
	if err := json.Unmarshal(b, &back); err != nil || back != want {
		t.Errorf("JSON %s reads back as %+v (%v)", b, back, err)
	}
}

// Each way a request can fail is counted under its own kind.
func TestErrorsByKind(t *testing.T) {
	sse := func(w http.ResponseWriter, events ...string) {
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range events {
			w.Write([]byte("data: " + e + "\n\n"))
		}
	}
	const (
		content = `{"choices":[{"delta":{"content":"hi"}}]}`
		usage   = `{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}`
	)
	cases := []func(w http.ResponseWriter){
		func(w http.ResponseWriter) { sse(w, content, usage, "[DONE]") },
		func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "1")
			writeJSON(w, 429, map[string]any{"error": map[string]any{"message": "queue full", "type": "rate_limit_error", "code": "rate_limited"}})
		},
		func(w http.ResponseWriter) { // vLLM's shape: the code is a number
			writeJSON(w, 503, map[string]any{"error": map[string]any{"message": "busy", "type": "ServiceUnavailable", "code": 503}})
		},
		func(w http.ResponseWriter) { http.Error(w, "bad gateway", 502) },
		func(w http.ResponseWriter) {
			sse(w, content, `{"error":{"message":"worker lost","type":"server_error","code":"worker_lost"}}`)
		},
		func(w http.ResponseWriter) { sse(w, content) }, // no [DONE]
		func(w http.ResponseWriter) { sse(w, content, "[DONE]") },
		func(w http.ResponseWriter) { sse(w, "{not json") },
		func(w http.ResponseWriter) {
			c, _, _ := http.NewResponseController(w).Hijack()
			c.Close()
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req chatRequest
		json.NewDecoder(r.Body).Decode(&req)
		i, _ := strconv.Atoi(strings.Fields(req.Messages[0].Content)[0])
		cases[i%len(cases)](w)
	}))
	defer srv.Close()
	r, err := Run(context.Background(), Config{BaseURL: srv.URL, Model: "m", Requests: 2 * len(cases), StreamShare: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range r.Errors {
		got[e.Kind] = e.Count
		if e.Example == "" {
			t.Errorf("%s: no example", e.Kind)
		}
	}
	want := map[string]int{
		"http 429 rate_limited": 2, "http 503 503": 2, "http 502": 2, "stream: worker_lost": 2,
		"protocol: stream cut": 2, "protocol: no usage": 2, "protocol: bad JSON": 2, "network: connection closed": 2,
	}
	if len(got) != len(want) {
		t.Errorf("kinds %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%q: %d, want %d (all: %v)", k, got[k], n, got)
		}
	}
	if r.Succeeded != 2 || r.Failed != 16 || r.CompletionTokens != 2 || r.Latency.N != 2 {
		t.Errorf("ok %d failed %d tokens %d latency samples %d", r.Succeeded, r.Failed, r.CompletionTokens, r.Latency.N)
	}
}

func TestConnectionRefusedAndTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so the server sees the client go away
		<-r.Context().Done()
	}))
	defer srv.Close()
	r, err := Run(context.Background(), Config{BaseURL: srv.URL, Model: "m", Requests: 1, Timeout: 50 * time.Millisecond})
	if err != nil || len(r.Errors) != 1 || r.Errors[0].Kind != "timeout" {
		t.Errorf("a server that never answers: %v %+v", err, r)
	}
	srv.Close()
	r, err = Run(context.Background(), Config{BaseURL: srv.URL, Model: "m", Requests: 1})
	if err != nil || len(r.Errors) != 1 || r.Errors[0].Kind != "network: connection refused" {
		t.Errorf("a closed port: %v %+v", err, r)
	}
}

// TTFT is taken at the first chunk with content: after the role chunk,
// before the rest of the stream.
func TestTTFTAtFirstContent(t *testing.T) {
	const gap = 40 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		send := func(e string) { w.Write([]byte("data: " + e + "\n\n")); rc.Flush() }
		send(`{"choices":[{"delta":{"role":"assistant","content":""}}]}`)
		time.Sleep(gap) // the server's think time, not the test waiting
		send(`{"choices":[{"delta":{"content":"first"}}]}`)
		time.Sleep(gap)
		send(`{"choices":[{"delta":{"content":" second"}}]}`)
		send(`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}`)
		send("[DONE]")
	}))
	defer srv.Close()
	r, err := Run(context.Background(), Config{BaseURL: srv.URL, Model: "m", Requests: 1, StreamShare: 1})
	if err != nil || r.Succeeded != 1 {
		t.Fatalf("%v %+v", err, r)
	}
	if r.TTFT.P50 < gap || r.TTFT.P50 > r.Latency.P50-gap || r.Latency.P50 < 2*gap {
		t.Errorf("TTFT %v, latency %v: want TTFT ≥ %v and ≥ %v before the end", r.TTFT.P50, r.Latency.P50, gap, gap)
	}
}

func TestRefusesRemoteBaseURL(t *testing.T) {
	for url, ok := range map[string]bool{
		"http://127.0.0.1:10000/v1": true, "http://127.9.9.9/v1": true, "http://[::1]:8/v1": true, "http://localhost:1/v1": true,
		"http://10.0.0.1/v1": false, "https://api.openai.com/v1": false, "http://[::2]/v1": false, "http://127.0.0.1.example.com/v1": false,
	} {
		if err := CheckLoopback(url); (err == nil) != ok || (!ok && !errors.Is(err, ErrRemote)) {
			t.Errorf("%s: %v", url, err)
		}
	}
	if _, err := Run(context.Background(), Config{BaseURL: "http://192.0.2.1/v1", Model: "m"}); !errors.Is(err, ErrRemote) {
		t.Errorf("Run to a remote address: %v", err)
	}
	if _, err := StartRelay("127.0.0.1:0", "http://192.0.2.1/v1", 2, false); !errors.Is(err, ErrRemote) {
		t.Errorf("a relay to a remote engine: %v", err)
	}
	if _, err := StartEngine("0.0.0.0:0", &Engine{}); !errors.Is(err, ErrRemote) {
		t.Errorf("an engine on all interfaces: %v", err)
	}
}

// A timed run stops starting requests when its time is up, and reports
// progress to the end.
func TestDurationAndProgress(t *testing.T) {
	var ps []Progress
	r, err := Run(context.Background(), Config{BaseURL: newEngine(t), Concurrency: 2, Duration: 150 * time.Millisecond,
		ProgressInterval: 10 * time.Millisecond, Progress: func(p Progress) { ps = append(ps, p) }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Elapsed < 150*time.Millisecond || r.Succeeded == 0 || r.Failed != 0 {
		t.Errorf("elapsed %v, %d ok, %d failed", r.Elapsed, r.Succeeded, r.Failed)
	}
	last := ps[len(ps)-1]
	if len(ps) < 2 || !last.Final || last.Fraction != 1 || last.Done != r.Requests || last.InFlight != 0 {
		t.Errorf("%d progress reports, last %+v", len(ps), last)
	}
	for _, p := range ps[:len(ps)-1] {
		if p.Final || p.Fraction > 1 {
			t.Errorf("report before the end: %+v", p)
		}
	}
}

// An interrupted run stops at once and says so.
func TestInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		cancel()
		<-r.Context().Done()
	}))
	defer srv.Close()
	r, err := Run(ctx, Config{BaseURL: srv.URL, Model: "m", Concurrency: 3, Duration: time.Hour})
	if err != nil || !r.Interrupted || r.Requests != 0 {
		t.Errorf("%v %+v", err, r)
	}
}

// The bare relay passes answers, streamed or not, through its hops.
func TestRelay(t *testing.T) {
	e, err := StartEngine("127.0.0.1:0", &Engine{Model: "relayed"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	relay, err := StartRelay("127.0.0.1:0", e.URL, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	if len(relay.srvs) != 2 || relay.URL == e.URL {
		t.Fatalf("relay %s with %d hops", relay.URL, len(relay.srvs))
	}
	r, err := Run(context.Background(), Config{BaseURL: relay.URL, Concurrency: 3, Requests: 12, StreamShare: 0.5, MaxTokens: 7})
	if err != nil {
		t.Fatal(err)
	}
	if r.Model != "relayed" || r.Succeeded != 12 || r.Streamed != 6 || r.CompletionTokens != 12*7 || r.TTFT.N != 6 {
		t.Errorf("through the relay: %+v", r)
	}
}

func TestEngineRefusesUnknownModel(t *testing.T) {
	r, err := Run(context.Background(), Config{BaseURL: newEngine(t), Model: "other", Requests: 2, StreamShare: 0.5})
	if err != nil || r.Failed != 2 || r.Errors[0].Kind != "http 404 model_not_found" {
		t.Errorf("%v %+v", err, r)
	}
}

func TestReport(t *testing.T) {
	r, err := Run(context.Background(), Config{BaseURL: newEngine(t), Requests: 4, StreamShare: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	r.Errors = []ErrorCount{{Kind: "http 429 rate_limited", Count: 3, Example: "queue full"}}
	var text bytes.Buffer
	r.WriteText(&text)
	for _, want := range []string{"4 ok", "req/s", "latency", "TTFT", "p99", "http 429 rate_limited", "queue full"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, text.String())
		}
	}
	b, _ := json.Marshal(r)
	var back Result
	if err := json.Unmarshal(b, &back); err != nil || back.Latency != r.Latency || back.Elapsed.Round(time.Microsecond) != r.Elapsed.Round(time.Microsecond) {
		t.Errorf("JSON %s reads back as %+v (%v)", b, back, err)
	}

	var plain, term bytes.Buffer
	for _, w := range []struct {
		b *bytes.Buffer
		t bool
	}{{&plain, false}, {&term, true}} {
		f := ProgressWriter(w.b, w.t)
		f(Progress{Elapsed: 100 * time.Millisecond, Done: 5, Succeeded: 5, Fraction: 0.1})
		f(Progress{Elapsed: 200 * time.Millisecond, Done: 9, Succeeded: 9, Fraction: 0.2})
		f(Progress{Elapsed: time.Second, Done: 50, Succeeded: 49, Failed: 1, Fraction: 1, Final: true})
	}
	if n := strings.Count(plain.String(), "\n"); n != 2 || strings.Contains(plain.String(), "\r") {
		t.Errorf("plain progress: one line a second and the last:\n%s", plain.String())
	}
	if n := strings.Count(term.String(), "\r["); n != 3 || !strings.HasSuffix(term.String(), "\n") {
		t.Errorf("terminal progress: %q", term.String())
	}
}
