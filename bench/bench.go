// Package bench generates load on an OpenAI-compatible API and measures it,
// in the spirit of `vllm bench serve` and wrk: Run keeps Concurrency chat
// completion requests in flight for a duration or a count, a share of them
// streamed, and reports requests per second, time to first token (TTFT) and
// end-to-end latency quantiles, tokens per second, and errors by kind.
//
// What is measured, and how:
//   - A request's latency runs from just before it is sent to the end of its
//     body ([DONE] for a stream). Its TTFT (streams only) runs to the first
//     chunk whose delta has content, not to the response headers.
//   - Tokens are counted only from the server's usage report (streams ask for
//     it with stream_options.include_usage); an answer without one is an error.
//   - Quantiles are exact, over all collected samples of successful requests,
//     by nearest rank on the sorted samples: the p-quantile is the smallest
//     sample with at least p of all samples at or below it (so p50 is the
//     median, the lower middle one for an even count). No histogram buckets.
//   - Errors are not retried. Each is counted under a kind: "network: …"
//     (refused, reset, closed, other), "timeout", "http STATUS CODE" with the
//     OpenAI error code (or type) from the body, "stream: CODE" for an error
//     event after the stream began, and "protocol: …" for answers that are not
//     OpenAI's wire format (a stream cut before [DONE], no usage, bad JSON).
//   - When the duration is up, no request is started; those in flight finish
//     and count, and the elapsed time runs to the last of them.
//
// Load goes only to loopback addresses unless Config.AllowRemote is set: a
// load generator pointed at someone else's server by a typo is an attack.
//
// For comparisons the package also serves what sits on either side of the
// network under test: Engine, an OpenAI-compatible engine that answers at
// once (so a benchmark measures what is in front of it, not inference), and
// StartRelay, a chain of bare httputil.ReverseProxy hops in front of an
// engine (the baseline that Cocoon's client → proxy → worker path is held to).
package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrRemote is returned for a base URL that is not on loopback when
// Config.AllowRemote is not set.
var ErrRemote = errors.New("bench: not a loopback address (use --allow-remote to send load elsewhere)")

// Config describes one load run. Zero values take the defaults noted.
type Config struct {
	// BaseURL is the API's base URL, e.g. http://127.0.0.1:10000/v1.
	BaseURL string
	// Model is the model asked for; empty: the first of GET BaseURL/models.
	Model string
	// APIKey, if set, is sent as a bearer token.
	APIKey string
	// Concurrency is how many requests are kept in flight; 0: 1.
	Concurrency int
	// Duration is how long new requests are started; 0: until Requests
	// have been sent. With neither set, Run sends 1 request.
	Duration time.Duration
	// Requests, if not 0, is how many requests are sent in all.
	Requests int
	// StreamShare is the share of requests that stream, 0 to 1. Streamed
	// requests are spread evenly: request i streams when
	// floor((i+1)·share) > floor(i·share).
	StreamShare float64
	// PromptWords is the prompt's length in words (roughly as many
	// tokens); 0: 32. Each request's prompt differs, so no prefix cache
	// serves it whole.
	PromptWords int
	// MaxTokens is sent as max_tokens, the output length; 0: 16.
	MaxTokens int
	// Timeout bounds each request; 0: one minute.
	Timeout time.Duration
	// AllowRemote permits a BaseURL outside loopback.
	AllowRemote bool
	// Client sends the requests; nil: a client whose transport keeps a
	// connection per concurrent request alive.
	Client *http.Client
	// Progress, if set, is called about every ProgressInterval while the
	// run lasts, and once at its end with Final set.
	Progress func(Progress)
	// ProgressInterval is how often Progress is called; 0: 100 ms.
	ProgressInterval time.Duration
}

// Progress is a snapshot of a run, for a progress bar.
type Progress struct {
	Elapsed   time.Duration
	Done      int // requests finished, with or without error
	Failed    int
	InFlight  int
	Fraction  float64 // of the run done, 0 to 1, by time or count
	Final     bool
	Duration  time.Duration // Config.Duration
	Requests  int           // Config.Requests
	Succeeded int
}

func (c *Config) defaults() {
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.Duration <= 0 && c.Requests <= 0 {
		c.Requests = 1
	}
	if c.PromptWords <= 0 {
		c.PromptWords = 32
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = 16
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Minute
	}
	if c.ProgressInterval <= 0 {
		c.ProgressInterval = 100 * time.Millisecond
	}
	c.StreamShare = min(max(c.StreamShare, 0), 1)
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.Client == nil {
		c.Client = NewClient(c.Concurrency)
	}
}

// NewClient returns an HTTP client for n concurrent requests to one host:
// unlike http.DefaultTransport, which keeps two idle connections per host,
// it keeps n, so a run measures requests and not TCP handshakes.
func NewClient(n int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = max(n, 100)
	t.MaxIdleConnsPerHost = max(n, 2)
	return &http.Client{Transport: t}
}

// CheckLoopback returns ErrRemote unless rawURL's host is a loopback IP
// address (127.0.0.0/8, ::1) or "localhost".
func CheckLoopback(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("bench: base URL %q: %w", rawURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("bench: base URL %q: want http or https", rawURL)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrRemote, rawURL)
}

// Run sends the load cfg describes and reports what it measured. It returns
// an error only when the run cannot start (a bad or remote base URL, no
// model); failed requests are counted in the result. When ctx ends, requests
// in flight are abandoned and not counted, and the result is marked
// Interrupted.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg.defaults()
	if !cfg.AllowRemote {
		if err := CheckLoopback(cfg.BaseURL); err != nil {
			return nil, err
		}
	}
	if cfg.Model == "" {
		m, err := firstModel(ctx, cfg)
		if err != nil {
			return nil, err
		}
		cfg.Model = m
	}

	var (
		next                    atomic.Int64
		done, failed, inFlight  atomic.Int64
		samples                 = make([][]sample, cfg.Concurrency)
		wg                      sync.WaitGroup
		start                   = time.Now()
		deadline                time.Time
		progressDone, stopTicks = make(chan struct{}), make(chan struct{})
	)
	if cfg.Duration > 0 {
		deadline = start.Add(cfg.Duration)
	}
	snapshot := func(final bool) Progress {
		p := Progress{Elapsed: time.Since(start), Done: int(done.Load()), Failed: int(failed.Load()),
			InFlight: int(inFlight.Load()), Final: final, Duration: cfg.Duration, Requests: cfg.Requests}
		p.Succeeded = p.Done - p.Failed
		if cfg.Duration > 0 {
			p.Fraction = min(float64(p.Elapsed)/float64(cfg.Duration), 1)
		}
		if cfg.Requests > 0 {
			p.Fraction = max(p.Fraction, float64(p.Done)/float64(cfg.Requests))
		}
		if final {
			p.Fraction = 1
		}
		return p
	}
	go func() {
		defer close(progressDone)
		if cfg.Progress == nil {
			return
		}
		tick := time.NewTicker(cfg.ProgressInterval)
		defer tick.Stop()
		for {
			select {
			case <-stopTicks:
				return
			case <-tick.C:
				cfg.Progress(snapshot(false))
			}
		}
	}()

	for w := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if (cfg.Requests > 0 && i >= cfg.Requests) || (!deadline.IsZero() && !time.Now().Before(deadline)) || ctx.Err() != nil {
					return
				}
				inFlight.Add(1)
				s := do(ctx, &cfg, i)
				inFlight.Add(-1)
				if ctx.Err() != nil {
					return // abandoned, not measured
				}
				samples[w] = append(samples[w], s)
				if s.kind != "" {
					failed.Add(1)
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopTicks)
	<-progressDone
	if cfg.Progress != nil {
		cfg.Progress(snapshot(true))
	}
	r := summarize(cfg, slices.Concat(samples...), elapsed)
	r.Interrupted = ctx.Err() != nil
	return r, nil
}

// firstModel asks the API for its models and returns the first.
func firstModel(ctx context.Context, cfg Config) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := getJSON(ctx, &cfg, "/models", &list); err != nil {
		return "", fmt.Errorf("bench: finding a model (or pass one): %w", err)
	}
	if len(list.Data) == 0 || list.Data[0].ID == "" {
		return "", fmt.Errorf("bench: %s/models lists no model", cfg.BaseURL)
	}
	return list.Data[0].ID, nil
}

// streams reports whether request i streams, for the given share.
func streams(i int, share float64) bool {
	return int(float64(i+1)*share) > int(float64(i)*share)
}
