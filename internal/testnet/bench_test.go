package testnet

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/engine/remote"
)

// BenchmarkOverhead measures what the network adds to a request: the same
// non-streaming chat request goes, alternately, straight to an engine that
// answers at once and through client → proxy → worker → that engine. It
// reports the medians of both and their difference ("added-µs"), so the
// figure is a ratio of the same run on a noisy machine, not an absolute time.
func BenchmarkOverhead(b *testing.B) {
	for _, stream := range []bool{false, true} {
		name := "json"
		if stream {
			name = "stream"
		}
		b.Run(name, func(b *testing.B) { benchOverhead(b, stream) })
	}
}

func benchOverhead(b *testing.B, stream bool) {
	fake := enginetest.NewFakeServer(enginetest.FakeOptions{Answer: "an instant answer"})
	defer fake.Close()
	eng, err := remote.New(context.Background(), remote.Config{BaseURL: fake.URL})
	if err != nil {
		b.Fatal(err)
	}
	n := Start(b, Options{Engines: []engine.Engine{eng}, DirectoryTTL: time.Minute, Unrecorded: true})
	body := `{"model":"fake-model","messages":[{"role":"user","content":"hello there"}]`
	if stream {
		body += `,"stream":true,"stream_options":{"include_usage":true}`
	}
	body += "}"
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	call := func(base string) time.Duration {
		start := time.Now()
		resp, err := hc.Post(base+"/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if resp.StatusCode != 200 || !strings.Contains(string(out), "instant") {
			b.Fatalf("%s: %d %s", base, resp.StatusCode, out)
		}
		return d
	}
	for range 20 { // warm connections and caches
		call(fake.URL)
		call(n.BaseURL)
	}
	direct := make([]time.Duration, 0, b.N)
	network := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		direct = append(direct, call(fake.URL))
		network = append(network, call(n.BaseURL))
	}
	b.StopTimer()
	d, w := median(direct), median(network)
	b.ReportMetric(float64(d.Microseconds()), "direct-µs")
	b.ReportMetric(float64(w.Microseconds()), "network-µs")
	b.ReportMetric(float64((w - d).Microseconds()), "added-µs")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkConcurrent32 sends b.N chat requests through client → proxy →
// two workers of the default capacity (4) → an engine that answers at once,
// 32 at a time: eight times what the workers take at once, so the proxy
// must queue. It reports throughput ("req/s"; "ok-req/s" counts only the
// requests answered 200) and the requests that did not ("errors"); a
// healthy network has none.
func BenchmarkConcurrent32(b *testing.B) {
	const clients = 32
	fake := enginetest.NewFakeServer(enginetest.FakeOptions{Answer: "an instant answer"})
	defer fake.Close()
	var engines []engine.Engine
	for range 2 {
		eng, err := remote.New(context.Background(), remote.Config{BaseURL: fake.URL})
		if err != nil {
			b.Fatal(err)
		}
		engines = append(engines, eng)
	}
	// Credit for every request in flight: this measures slots, not credit.
	n := Start(b, Options{Engines: engines, Fanout: 2, DirectoryTTL: time.Minute, Unrecorded: true, CreditLimit: 1000 * 1_000_000_000})
	body := `{"model":"fake-model","messages":[{"role":"user","content":"hello there"}]}`
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer hc.CloseIdleConnections()
	call := func() bool {
		resp, err := hc.Post(n.BaseURL+"/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	for range clients { // warm connections and caches
		call()
	}
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if !call() {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(b.N-int(errs.Load()))/elapsed.Seconds(), "ok-req/s")
	b.ReportMetric(float64(errs.Load()), "errors")
	b.ReportMetric(100*float64(errs.Load())/float64(b.N), "%errors")
}
