package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/internal/adversary"
	"github.com/cocoon-go/cocoon/node"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/seal"
)

// The fault tests run every role as a separate OS process on loopback (see
// TestMain) and kill one of them with SIGKILL: a worker mid-stream, a
// proxy, the chain during claims. Each asserts what the design promises
// survives the kill: the money (nothing booked or paid for an answer not
// delivered, nothing paid twice, books intact) and the service (the next
// request served, the killed role back within a bound derived from its
// peers' redial backoff).

// words is an answer of n words, each the word w: a fake engine streams
// one word per chunk.
func words(w string, n int) string {
	return strings.TrimSpace(strings.Repeat(w+" ", n))
}

// simulatedTEE makes a simulated-TEE vendor in dir and returns the flags
// proxies and clients need to trust its workers.
func simulatedTEE(t *testing.T, dir string) []string {
	t.Helper()
	tee := exec.Command(os.Args[0], "simulated-tee", dir)
	tee.Env = append(os.Environ(), "COCOON_TEST_AS_MAIN=1")
	out, err := tee.CombinedOutput()
	if err != nil {
		t.Fatalf("simulated-tee: %v\n%s", err, out)
	}
	root := regexp.MustCompile(`vendor root:\s+(\S+)`).FindStringSubmatch(string(out))
	meas := regexp.MustCompile(`measurement:\s+([0-9a-f]{64})`).FindStringSubmatch(string(out))
	if root == nil || meas == nil {
		t.Fatalf("simulated-tee printed:\n%s", out)
	}
	return []string{"--trust-simulated-root", root[1], "--allow-simulated-measurement", meas[1]}
}

// kill ends the process with SIGKILL, as a crash or the OOM killer would.
func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatalf("killing %s: %v", p.name, err)
	}
	p.cmd.Wait()
}

// faultNet is a network without a chain, each role a separate process: a
// proxy serving one client on credit, workers fronting fake engines over
// HTTP, and the client.
type faultNet struct {
	dir        string
	trust      []string
	proxyArgs  []string // to start it again on the same data dir and addresses
	proxy      *process
	proxyURL   string // the client listener, https://
	workerAddr string
	pin        string
	workers    map[string]*process
	client     *process
	base       string // the client's OpenAI base URL
	https      *http.Client
}

// startFaultNet starts a proxy, one worker per engine (name → engine base
// URL) with capacity, and a client, and waits until the proxy has admitted
// every worker.
func startFaultNet(t *testing.T, engines map[string]string, capacity int, clientArgs ...string) *faultNet {
	t.Helper()
	n := &faultNet{dir: t.TempDir(), workers: map[string]*process{}}
	n.trust = simulatedTEE(t, filepath.Join(n.dir, "tee"))
	acct := exec.Command(os.Args[0], "client", "account", "--data-dir", filepath.Join(n.dir, "client"))
	acct.Env = append(os.Environ(), "COCOON_TEST_AS_MAIN=1")
	out, err := acct.Output()
	account := strings.TrimSpace(string(out))
	if err != nil || len(account) != 64 {
		t.Fatalf("client account: %v %q", err, out)
	}
	n.proxyArgs = append([]string{"proxy", "--data-dir", filepath.Join(n.dir, "proxy"), "--listen", freeAddr(t),
		"--worker-listen", freeAddr(t), "--client", account}, n.trust...)
	n.startProxy(t)
	tcfg, err := identity.PinnedConfig(n.pin)
	if err != nil {
		t.Fatal(err)
	}
	n.https = &http.Client{Transport: &http.Transport{TLSClientConfig: tcfg, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
	for name, url := range engines {
		n.workers[name] = start(t, name, "worker", "--data-dir", filepath.Join(n.dir, name), "--name", name,
			"--proxy", n.workerAddr, "--proxy-pin", n.pin, "--simulated-tee", filepath.Join(n.dir, "tee"),
			"--engine-url", url, "--capacity", strconv.Itoa(capacity))
	}
	n.waitWorkers(t, len(engines), 30*time.Second)
	// The client's first directory, read now, holds every worker.
	n.client = start(t, "client", append(append([]string{"client", "--data-dir", filepath.Join(n.dir, "client"),
		"--addr", freeAddr(t), "--proxy", n.proxyURL, "--proxy-pin", n.pin}, n.trust...), clientArgs...)...)
	n.base = n.client.await(t, `OpenAI base URL (\S+)`)[1]
	return n
}

// startProxy starts the proxy with n.proxyArgs and waits until it is ready.
func (n *faultNet) startProxy(t *testing.T) {
	t.Helper()
	n.proxy = start(t, "proxy", n.proxyArgs...)
	m := n.proxy.await(t, `proxy ready: clients (https://\S+), workers (\S+), pin ([0-9a-f]{64})`)
	if n.pin != "" && m[3] != n.pin {
		t.Fatalf("the proxy came back with pin %s, not %s: its TLS key is not kept in its data dir", m[3], n.pin)
	}
	n.proxyURL, n.workerAddr, n.pin = m[1], m[2], m[3]
}

// metric is the value of one series (its name with its labels, as
// Prometheus prints them) on a /metrics page; ok is false if absent.
func metric(page, series string) (v float64, ok bool) {
	for _, l := range strings.Split(page, "\n") {
		if rest, found := strings.CutPrefix(l, series+" "); found {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// proxyMetric reads one series from the proxy's /metrics; -1 if the proxy
// does not answer or does not show it.
func (n *faultNet) proxyMetric(series string) float64 {
	resp, err := n.https.Get(n.proxyURL + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v, ok := metric(string(b), series); ok {
		return v
	}
	return -1
}

// waitWorkers waits until the proxy shows want workers admitted.
func (n *faultNet) waitWorkers(t *testing.T, want int, within time.Duration) {
	t.Helper()
	waitFor(t, fmt.Sprintf("the proxy to admit %d workers", want), within, func() bool {
		return n.proxyMetric("cocoon_proxy_workers_connected") == float64(want)
	})
}

// waitFor polls cond every 20 ms until it holds, failing the test after within.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
	}
}

// booked reads a journal of accounts.Entry lines (the proxy's ledger, the
// client's receipts) as the entries' request ids and their total cost.
func booked(t *testing.T, path string) (ids []string, cost uint64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if l == "" {
			continue
		}
		var e accounts.Entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%s: a line that is not an entry: %v\n%s", path, err, l)
		}
		ids = append(ids, e.RequestID)
		cost += e.Cost
	}
	return ids, cost
}

// streamed is what an app saw of one streamed chat completion.
type streamed struct {
	status  int    // HTTP status of the answer
	id      string // request id, hex, from the chunks' completion id
	content string
	chunks  int
	usage   bool   // a usage chunk came
	done    bool   // data: [DONE] came
	errCode string // the code of an error event, or of an error answer
	err     error  // the connection failed
}

func (s streamed) String() string {
	content := s.content
	if len(content) > 40 {
		content = content[:40] + "…"
	}
	return fmt.Sprintf("status %d, %d chunks %q, usage %v, done %v, error %q %v", s.status, s.chunks, content, s.usage, s.done, s.errCode, s.err)
}

// whole reports whether the stream ended as a complete answer should.
func (s streamed) whole() bool {
	return s.status == http.StatusOK && s.usage && s.done && s.errCode == "" && s.err == nil
}

// streamChat posts a streamed chat completion to an OpenAI base URL, as
// an app would, and reads it to the end. onContent, if not nil, hears the
// first piece of content as it arrives.
func streamChat(ctx context.Context, base, prompt string, maxTokens int, onContent func(string)) (s streamed) {
	body, _ := json.Marshal(map[string]any{"model": enginetest.DefaultModel, "stream": true, "max_tokens": maxTokens,
		"stream_options": map[string]any{"include_usage": true}, "messages": []map[string]string{{"role": "user", "content": prompt}}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/chat/completions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.err = err
		return s
	}
	defer resp.Body.Close()
	s.status = resp.StatusCode
	type apiError struct {
		Code string `json:"code"`
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error apiError }
		json.NewDecoder(resp.Body).Decode(&e)
		s.errCode = e.Error.Code
		return s
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			s.done = true
			continue
		}
		var ev struct {
			ID      string `json:"id"`
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Usage json.RawMessage `json:"usage"`
			Error *apiError       `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			s.err = fmt.Errorf("event %q: %w", data, err)
			return s
		}
		if ev.Error != nil {
			s.errCode = ev.Error.Code
			continue
		}
		s.chunks++
		if id, ok := strings.CutPrefix(ev.ID, "chatcmpl-"); ok {
			s.id = id
		}
		if len(ev.Usage) > 0 && string(ev.Usage) != "null" {
			s.usage = true
		}
		for _, c := range ev.Choices {
			if c.Delta.Content != "" && s.content == "" && onContent != nil {
				onContent(c.Delta.Content)
			}
			s.content += c.Delta.Content
		}
	}
	s.err = sc.Err()
	return s
}

// TestFaultWorkerKilledMidStream kills the worker serving a stream after
// its first words: the app gets an error, not a short answer; neither the
// proxy nor the client books anything for it; and the next request is
// served whole by the other worker.
func TestFaultWorkerKilledMidStream(t *testing.T) {
	answers := map[string]string{"w1": words("alpha", 40), "w2": words("beta", 40)}
	engines := map[string]string{}
	for name, a := range answers {
		// 40 words at 50 ms: the kill lands two seconds before the end.
		fake := enginetest.NewFakeServer(enginetest.FakeOptions{Answer: a, ChunkDelay: 50 * time.Millisecond})
		defer fake.Close()
		engines[name] = fake.URL
	}
	n := startFaultNet(t, engines, 4)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var victim, survivor string
	cut := streamChat(ctx, n.base, "tell me a long story", 100, func(first string) {
		for name, a := range answers {
			if strings.HasPrefix(a, strings.TrimSpace(first)) {
				victim = name
			} else {
				survivor = name
			}
		}
		n.workers[victim].kill(t)
	})
	if victim == "" {
		t.Fatalf("the stream brought no word of either answer: %v", cut)
	}
	if cut.whole() || cut.errCode != "worker_lost" || !strings.HasPrefix(answers[victim], cut.content) || cut.content == answers[victim] {
		t.Errorf("a stream whose worker was killed after its first word ended %v; want a prefix of the answer and a worker_lost error event", cut)
	}
	if cut.id == "" {
		t.Fatalf("the cut stream's chunks carry no request id: %v", cut)
	}

	next := streamChat(ctx, n.base, "and another", 100, nil)
	t.Logf("killed %s mid-stream: %v; the next request: %v", victim, cut, next)
	if !next.whole() || next.content != answers[survivor] {
		t.Fatalf("the request after the kill: %v; want %s's whole answer", next, survivor)
	}

	// The proxy books a receipt after relaying it: wait for the second
	// request's entry, then check it is the only one at either end.
	ledger, receipts := filepath.Join(n.dir, "proxy", "ledger.jsonl"), filepath.Join(n.dir, "client", "receipts.jsonl")
	waitFor(t, "the proxy to book the answer after the kill", 5*time.Second, func() bool {
		ids, _ := booked(t, ledger)
		return len(ids) > 0
	})
	for _, path := range []string{ledger, receipts} {
		ids, cost := booked(t, path)
		if len(ids) != 1 || ids[0] != next.id || cost == 0 {
			t.Errorf("%s books %v (cost %d); want the answer after the kill, %s, alone (the cut one was %s)", path, ids, cost, next.id, cut.id)
		}
	}
	if !strings.Contains(n.proxy.output(), "worker lost mid-stream") {
		t.Errorf("the proxy did not log the worker lost mid-stream")
	}
}

// workerRedialBound is how soon after a proxy is back a worker that lost
// it has dialled again, given that the proxy was down for down. The worker
// waits backoff/2 + rand(backoff) between dials, backoff 0.2 s doubling
// (worker.Worker.Run): its k-th wait is under 0.3·2^k s and starts no
// sooner than 0.1·(2^k − 1) s after the loss, the sum of the waits before
// it at their shortest. The wait under way when the proxy comes back
// started at s ≤ down, so it ends within 0.3·2^k ≤ 3s + 0.3 s ≤ 3·down +
// 0.3 s. Dialling, the TLS handshake and checking the worker's evidence
// take the slack.
func workerRedialBound(down time.Duration) time.Duration {
	return 3*down + 300*time.Millisecond + 2*time.Second
}

// TestFaultProxyKilledAndRestarted kills the proxy with SIGKILL while it
// relays a stream, and starts it again on the same data dir and
// addresses: the cut answer is booked nowhere; the worker is back within
// the bound its redial backoff allows; the ledger replayed at start has
// the totals it had before the kill and still refuses a booked request id;
// and the client is served again.
func TestFaultProxyKilledAndRestarted(t *testing.T) {
	fake := enginetest.NewFakeServer(enginetest.FakeOptions{Answer: words("steady", 10), ChunkDelay: 20 * time.Millisecond})
	defer fake.Close()
	n := startFaultNet(t, map[string]string{"w1": fake.URL}, 4)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ledger, receipts := filepath.Join(n.dir, "proxy", "ledger.jsonl"), filepath.Join(n.dir, "client", "receipts.jsonl")
	for i := range 3 {
		if s := streamChat(ctx, n.base, fmt.Sprint("question ", i), 100, nil); !s.whole() {
			t.Fatalf("request %d: %v", i, s)
		}
	}
	waitFor(t, "the proxy to book three answers", 5*time.Second, func() bool {
		ids, _ := booked(t, ledger)
		return len(ids) == 3
	})
	before, cost := booked(t, ledger)

	var killed time.Time
	cut := streamChat(ctx, n.base, "a question the proxy dies on", 100, func(string) {
		n.proxy.kill(t)
		killed = time.Now()
	})
	if killed.IsZero() || cut.whole() || cut.errCode == "" {
		t.Fatalf("a stream whose proxy was killed after its first word ended %v; want an error event", cut)
	}
	if ids, c := booked(t, ledger); strings.Join(ids, ",") != strings.Join(before, ",") || c != cost {
		t.Errorf("after the kill the ledger books %v (%d nanoTON); before it, %v (%d)", ids, c, before, cost)
	}
	if ids, c := booked(t, receipts); strings.Join(ids, ",") != strings.Join(before, ",") || c != cost {
		t.Errorf("the client kept receipts %v (%d nanoTON); the proxy booked %v (%d)", ids, c, before, cost)
	}

	n.startProxy(t)
	down := time.Since(killed)
	bound := workerRedialBound(down)
	n.waitWorkers(t, 1, bound)
	t.Logf("proxy down %v; the worker was back %v after it (bound %v)", down.Round(time.Millisecond), (time.Since(killed) - down).Round(time.Millisecond), bound.Round(time.Millisecond))

	// The ledger the proxy replayed (and cut any torn line off) has what it
	// had before, and the proxy still refuses a booked request id.
	if ids, c := booked(t, ledger); strings.Join(ids, ",") != strings.Join(before, ",") || c != cost {
		t.Errorf("after the restart the ledger books %v (%d nanoTON); before the kill, %v (%d)", ids, c, before, cost)
	}
	key, err := node.ClientKey(filepath.Join(n.dir, "client"))
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := hex.DecodeString(n.pin)
	c := &adversary.Client{Key: key, ProxyURL: n.proxyURL, Proxy: [32]byte(pin), HTTP: n.https}
	nowhere, err := seal.GenerateKey(seal.KEMMLKEM768X25519)
	if err != nil {
		t.Fatal(err)
	}
	to := &attest.Verified{KeyID: [32]byte{1}, Bundle: &attest.Bundle{HPKEKey: nowhere.PublicKey()}}
	post := func(id string) *adversary.Response {
		t.Helper()
		h := c.Header(enginetest.DefaultModel)
		if id != "" {
			b, err := hex.DecodeString(id)
			if err != nil || len(b) != len(h.RequestID) {
				t.Fatalf("booked request id %q", id)
			}
			h.RequestID = [16]byte(b)
		}
		raw, _, err := c.Seal(h, adversary.Chat(enginetest.DefaultModel, "again"), to)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Post(raw)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := post(before[0]); r.Status != http.StatusConflict || r.Error().Code != "duplicate_request" {
		t.Errorf("a request id booked before the kill, sent again after the restart: %d %s; want 409 duplicate_request", r.Status, r.Body)
	}
	if r := post(""); r.Status == http.StatusConflict {
		t.Errorf("a fresh request id was refused as a duplicate: %d %s", r.Status, r.Body)
	}

	after := streamChat(ctx, n.base, "are you back?", 100, nil)
	if !after.whole() {
		t.Fatalf("the first request after the restart: %v", after)
	}
	waitFor(t, "the proxy to book the answer after the restart", 5*time.Second, func() bool {
		ids, _ := booked(t, ledger)
		return len(ids) == len(before)+1
	})
	if ids, _ := booked(t, ledger); ids[len(ids)-1] != after.id {
		t.Errorf("the ledger's newest entry is %s, not the answer after the restart, %s", ids[len(ids)-1], after.id)
	}
}

// gate fronts a fake engine: it relays the first pass completion requests
// and holds every later one, unanswered, until its caller goes away. A
// worker in front of it has then requests that stream and requests that
// have not started, as many of each as the test says.
type gate struct {
	URL        string // base URL, ending in /v1
	pass       int64
	seen, held atomic.Int64
}

func newGate(t *testing.T, upstream *enginetest.FakeServer, pass int) *gate {
	target, err := url.Parse(strings.TrimSuffix(upstream.URL, "/v1"))
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.FlushInterval = -1
	g := &gate{pass: int64(pass)}
	quit := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && g.seen.Add(1) > g.pass {
			// Read to the end: only then does the server watch the
			// connection, and end the request's context when it closes.
			io.Copy(io.Discard, r.Body)
			g.held.Add(1)
			defer g.held.Add(-1)
			select {
			case <-r.Context().Done():
			case <-quit:
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		close(quit)
		srv.Close()
	})
	g.URL = srv.URL + "/v1"
	return g
}

// TestFaultConcurrentStreamsWhileAWorkerDies sends 50 streams at once to
// two workers and kills one (SIGKILL) while it streams two answers and
// holds two requests its engine has not started: the two streaming fail
// with an error event after their first words, and only they; the two not
// started are retried on the other worker, as are the queued ones, and
// every other stream is served whole; no app sees an error status (a 502
// or any other); and the books at both ends hold the 48 answers served.
func TestFaultConcurrentStreamsWhileAWorkerDies(t *testing.T) {
	const streams, streaming, capacity = 50, 2, 4
	dying, living := words("alpha", 40), words("beta", 10)
	// The dying worker's answers take two seconds, so both are mid-stream
	// when it dies; the living worker's take a quarter of one.
	slow := enginetest.NewFakeServer(enginetest.FakeOptions{Answer: dying, ChunkDelay: 50 * time.Millisecond})
	defer slow.Close()
	fast := enginetest.NewFakeServer(enginetest.FakeOptions{Answer: living, ChunkDelay: 20 * time.Millisecond})
	defer fast.Close()
	g := newGate(t, slow, streaming)
	n := startFaultNet(t, map[string]string{"w1": g.URL, "w2": fast.URL}, capacity)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var onDying atomic.Int64 // streams that have shown a word of the dying worker's answer
	results := make([]streamed, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			results[i] = streamChat(ctx, n.base, fmt.Sprint("stream ", i), 100, func(first string) {
				if strings.TrimSpace(first) == "alpha" {
					onDying.Add(1)
				}
			})
		})
	}
	// The dying worker is full: two answers under way, two requests held.
	waitFor(t, "the dying worker to stream two answers and hold two requests", 20*time.Second, func() bool {
		return onDying.Load() == streaming && g.held.Load() == capacity-streaming
	})
	n.workers["w1"].kill(t)
	wg.Wait()

	var cut, served []string
	for i, s := range results {
		switch {
		case s.whole() && s.content == living:
			served = append(served, s.id)
		case s.status == http.StatusOK && s.errCode == "worker_lost" && s.content != "" && strings.HasPrefix(dying, s.content) && s.content != dying:
			cut = append(cut, s.id)
		default:
			t.Errorf("stream %d ended %v; want the living worker's whole answer, or a cut one from the dying worker", i, s)
		}
	}
	if len(cut) != streaming || len(served) != streams-streaming {
		t.Errorf("%d streams cut and %d served; want the %d streaming from the dying worker cut and the other %d served",
			len(cut), len(served), streaming, streams-streaming)
	}
	if retried := strings.Count(n.proxy.output(), "retrying on another worker"); retried < capacity-streaming {
		t.Errorf("the proxy retried %d requests on another worker; the dying worker held %d it had not started", retried, capacity-streaming)
	}

	ledger, receipts := filepath.Join(n.dir, "proxy", "ledger.jsonl"), filepath.Join(n.dir, "client", "receipts.jsonl")
	waitFor(t, "the proxy to book every answer served", 5*time.Second, func() bool {
		ids, _ := booked(t, ledger)
		return len(ids) >= len(served)
	})
	slices.Sort(served)
	for _, path := range []string{ledger, receipts} {
		ids, _ := booked(t, path)
		slices.Sort(ids)
		if !slices.Equal(ids, served) {
			t.Errorf("%s books %d answers; want the %d served, and none of the %d cut (%v)", path, len(ids), len(served), len(cut), cut)
		}
	}
}

// supply is how the local chain served at url accounts for its value
// (local.Supply): what its faucet minted, and where it is now.
type supply struct {
	Minted   uint64 `json:"minted"`
	Balances uint64 `json:"balances"`
	Fees     uint64 `json:"fees"`
	FwdFees  uint64 `json:"forward_fees"`
}

func chainSupply(t *testing.T, url string) supply {
	t.Helper()
	resp, err := http.Get(url + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct{ Supply supply }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || st.Supply.Minted == 0 {
		t.Fatalf("chain status: %v, supply %+v", err, st.Supply)
	}
	return st.Supply
}

// conserved reports whether everything minted is in balances (wallets and
// channels alike) or was burnt as fees.
func (s supply) conserved() bool { return s.Minted == s.Balances+s.Fees+s.FwdFees }

// TestFaultChainKilledDuringClaims runs a paid network of separate
// processes on a served local chain whose proxy claims its client's
// channel at every voucher, and kills the chain with SIGKILL while
// requests and claims go on. The chain comes back from its directory with
// every nanoTON minted accounted for, in balances (channels included) or
// fees; the proxy, whose claims failed meanwhile, claims again once it is
// back; no claim ever exceeds what the client paid; and after a clean
// stop the client's channel has paid out exactly what the client was
// charged, the worker's exactly what the proxy booked for it.
func TestFaultChainKilledDuringClaims(t *testing.T) {
	dir := t.TempDir()
	fake := enginetest.NewFakeServer(enginetest.FakeOptions{Answer: "paid for while the chain may be down"})
	defer fake.Close()

	chainArgs := []string{"chain", "serve", "--dir", filepath.Join(dir, "chain"), "--listen", freeAddr(t)}
	chainProc := start(t, "chain", chainArgs...)
	url := chainProc.await(t, `use it with: --chain local\+(http://\S+)`)[1]
	ch := "--chain=local+" + url
	keys := map[string]string{}
	for _, role := range []string{"owner", "proxy", "worker", "client"} {
		keys[role] = filepath.Join(dir, role+".wallet.pem")
		w := must(t, "wallet", "new", ch, "--key", keys[role])
		must(t, "chain", "faucet", ch, w["address"].(string), "50")
	}
	trust := simulatedTEE(t, filepath.Join(dir, "tee"))
	rootAddr := must(t, "root", "deploy", ch, "--key", keys["owner"])["address"].(string)
	must(t, "root", "allow-measurement", ch, "--key", keys["owner"], "--root", rootAddr, trust[3])
	trust = append(trust, "--root", rootAddr)
	minted := chainSupply(t, url).Minted

	// Every voucher the proxy accepts queues a claim of it.
	cfg := filepath.Join(dir, "proxy.json")
	os.WriteFile(cfg, []byte(`{"proxy": {"claim_threshold": 1}}`), 0o600)
	proxy := start(t, "proxy", append([]string{"proxy", "--config", cfg, "--data-dir", filepath.Join(dir, "proxy"), "--listen", "127.0.0.1:0",
		"--worker-listen", "127.0.0.1:0", ch, "--wallet-key", keys["proxy"], "--deposit", "5"}, trust...)...)
	m := proxy.await(t, `proxy ready: clients (https://\S+), workers (\S+), pin ([0-9a-f]{64})`)
	worker := start(t, "worker", "worker", "--data-dir", filepath.Join(dir, "worker"), "--proxy", m[2], "--proxy-pin", m[3],
		"--simulated-tee", filepath.Join(dir, "tee"), "--engine-url", fake.URL, ch, "--wallet-key", keys["worker"])
	worker.await(t, "connected to proxy")
	proxy.await(t, "channel to worker open")
	client := start(t, "client", append([]string{"client", "--data-dir", filepath.Join(dir, "client"), "--addr", freeAddr(t),
		"--proxy", m[1], "--proxy-pin", m[3], ch, "--wallet-key", keys["client"], "--deposit", "5"}, trust...)...)
	clientChannel := client.await(t, `paying the proxy by channel.* channel=(\S+)`)[1]
	base := client.await(t, `OpenAI base URL (\S+)`)[1]
	tcfg, err := identity.PinnedConfig(m[3])
	if err != nil {
		t.Fatal(err)
	}
	n := &faultNet{proxyURL: m[1], https: &http.Client{Transport: &http.Transport{TLSClientConfig: tcfg, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}}
	claims := func(outcome string) float64 {
		return max(0, n.proxyMetric(`cocoon_proxy_claims_total{outcome="`+outcome+`"}`))
	}

	// Requests go on, one after another, until told to stop; each
	// answer's voucher queues a claim.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var served, failed atomic.Int64
	load := func(stop <-chan struct{}) (done chan struct{}) {
		done = make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if s := streamChat(ctx, base, fmt.Sprint("question ", i), 20, nil); s.whole() {
					served.Add(1)
				} else {
					failed.Add(1)
					t.Logf("request %d while the chain is killed or restarted: %v", i, s)
					time.Sleep(50 * time.Millisecond) // bounded by ctx: not a busy loop on a refusal
				}
			}
		}()
		return done
	}
	stop := make(chan struct{})
	done := load(stop)
	waitFor(t, "the proxy to make two claims", 30*time.Second, func() bool { return claims("ok") >= 2 })
	chainProc.kill(t)
	waitFor(t, "a claim to fail with the chain down", 30*time.Second, func() bool { return claims("failed") >= 1 })
	close(stop)
	<-done
	t.Logf("%d requests served and %d failed while the chain ran and after it was killed; %v claims made, %v failed",
		served.Load(), failed.Load(), claims("ok"), claims("failed"))

	// Back from its directory, the chain has lost and made nothing.
	chainProc = start(t, "chain", chainArgs...)
	if again := chainProc.await(t, `use it with: --chain local\+(http://\S+)`)[1]; again != url {
		t.Fatalf("the chain came back at %s, not %s", again, url)
	}
	if s := chainSupply(t, url); !s.conserved() || s.Minted != minted {
		t.Errorf("after the kill the chain has %+v: minted %d before, and minted must equal balances + fees", s, minted)
	}

	// The claim that failed is made again, without a new voucher to
	// prompt it: the proxy retries a failed claim RetryMin after its first
	// failure (doubling while it keeps failing), and the first failure
	// came just before the chain came back.
	ok := claims("ok")
	bound := payments.DefaultRetryMin + 3*time.Second
	waitFor(t, "the failed claim to be made again once the chain is back", bound, func() bool { return claims("ok") > ok })
	receipts := filepath.Join(dir, "client", "receipts.jsonl")
	_, paid := booked(t, receipts)
	if got := nano(t, must(t, "channel", "show", ch, clientChannel)["claimed"]); got == 0 || got > paid {
		t.Errorf("the proxy has claimed %d from the client's channel; the client has paid %d", got, paid)
	}

	// A clean stop settles every voucher, each exactly once.
	client.stop(t)
	proxy.stop(t)
	worker.stop(t)
	_, paid = booked(t, receipts)
	if got := nano(t, must(t, "channel", "show", ch, clientChannel)["claimed"]); got != paid {
		t.Errorf("the proxy claimed %d from the client's channel; the client was charged %d", got, paid)
	}
	var owed uint64
	b, _ := os.ReadFile(filepath.Join(dir, "proxy", "ledger.jsonl"))
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e accounts.Entry
		json.Unmarshal([]byte(l), &e)
		owed += e.WorkerPay
	}
	workerChannel := regexp.MustCompile(`channel to worker open.* channel=(\S+)`).FindStringSubmatch(proxy.output())[1]
	if got := nano(t, must(t, "channel", "show", ch, workerChannel)["claimed"]); got != owed || owed == 0 {
		t.Errorf("the worker claimed %d from its channel; the proxy booked %d for it", got, owed)
	}
	if s := chainSupply(t, url); !s.conserved() || s.Minted != minted {
		t.Errorf("at the end the chain has %+v: minted %d at the start, and minted must equal balances + fees", s, minted)
	}
	chainProc.stop(t)
}
