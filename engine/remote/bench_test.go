package remote_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/engine/remote"
)

// canned answers every request with the same bytes, without a network.
type canned []byte

func (c canned) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"text/event-stream"}},
		Body:       io.NopCloser(bytes.NewReader(c)),
		Request:    r,
	}, nil
}

// vllmStream is a stream of n one-token chunks as vLLM sends them.
func vllmStream(n int) []byte {
	var b bytes.Buffer
	for range n {
		b.WriteString(`data: {"id":"chatcmpl-9f3c2a1b7e8d4c5fa6b0e1d2c3b4a596","object":"chat.completion.chunk","created":1700000000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[{"index":0,"delta":{"content":" word"},"logprobs":null,"finish_reason":null}]}` + "\n\n")
	}
	fmt.Fprintf(&b, `data: {"id":"chatcmpl-9f3c2a1b7e8d4c5fa6b0e1d2c3b4a596","object":"chat.completion.chunk","created":1700000000,"model":"meta-llama/Llama-3.1-8B-Instruct","choices":[],"usage":{"prompt_tokens":12,"total_tokens":%d,"completion_tokens":%d}}`+"\n\ndata: [DONE]\n\n", 12+n, n)
	return b.Bytes()
}

// BenchmarkRelay measures what Run adds per streamed chunk: reading the
// event, rewriting id and model, dropping usage, re-encoding. No network.
func BenchmarkRelay(b *testing.B) {
	const chunks = 1000
	e, err := remote.New(context.Background(), remote.Config{
		BaseURL: "http://engine.invalid/v1",
		Models:  map[string]string{"llama-8b": "meta-llama/Llama-3.1-8B-Instruct"},
		Client:  &http.Client{Transport: canned(vllmStream(chunks))},
	})
	if err != nil {
		b.Fatal(err)
	}
	req := request(engine.Chat, "llama-8b", true, "")
	emit := func([]byte) error { return nil }
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if _, err := e.Run(context.Background(), req, emit); err != nil {
			b.Fatal(err)
		}
	}
	perChunk := time.Since(start) / time.Duration(b.N*chunks)
	b.ReportMetric(float64(perChunk.Nanoseconds()), "ns/chunk")
	b.ReportMetric(float64(time.Second)/float64(perChunk), "chunks/s")
}

// BenchmarkRelayHTTP is the same over loopback HTTP to the fake server, the
// whole cost of one streamed answer of the fake's nine words.
func BenchmarkRelayHTTP(b *testing.B) {
	s := enginetest.NewFakeServer(enginetest.FakeOptions{})
	defer s.Close()
	e, err := remote.New(context.Background(), remote.Config{BaseURL: s.URL})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	req := request(engine.Chat, enginetest.DefaultModel, true, "")
	n := 0
	emit := func([]byte) error { n++; return nil }
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		if _, err := e.Run(context.Background(), req, emit); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "chunks/s")
}

// BenchmarkDirectHTTP is BenchmarkRelayHTTP's baseline: the same request
// sent to the fake server by a plain HTTP client that reads the answer whole.
func BenchmarkDirectHTTP(b *testing.B) {
	s := enginetest.NewFakeServer(enginetest.FakeOptions{})
	defer s.Close()
	body := request(engine.Chat, enginetest.DefaultModel, true, `,"stream_options":{"include_usage":true}`).Body
	b.ReportAllocs()
	for b.Loop() {
		resp, err := http.Post(s.URL+"/chat/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
