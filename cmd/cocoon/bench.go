package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/cocoon-go/cocoon/bench"
)

const benchSummary = `Sends chat completion load to an OpenAI-compatible base URL and prints req/s, TTFT and
end-to-end latency p50/p90/p99, tokens/s and errors by kind (network, HTTP status and
OpenAI error code). Load goes only to loopback addresses unless --allow-remote.

  cocoon bench [flags]                       load --base-url (default: cocoon up's client)
  cocoon bench --baseline URL ... [flags]    the same load on each baseline first, then a comparison
  cocoon bench engine [--addr A]             serve an instant OpenAI-compatible engine for load tests
  cocoon bench relay --engine-url URL        serve a bare two-hop reverse proxy in front of an engine

A comparison of what Cocoon adds, in one run (see docs/performance.md):
  cocoon bench engine --addr 127.0.0.1:8000 &
  cocoon bench relay --engine-url http://127.0.0.1:8000/v1 --addr 127.0.0.1:8001 &
  cocoon up --engine-url http://127.0.0.1:8000/v1 &
  cocoon bench -c 32 -d 10s --baseline http://127.0.0.1:8000/v1 --baseline http://127.0.0.1:8001/v1`

func runBench(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "engine":
			return runBenchEngine(ctx, args[1:])
		case "relay":
			return runBenchRelay(ctx, args[1:])
		}
	}
	fs, _ := newFlags("bench", benchSummary)
	var cfg bench.Config
	fs.StringVar(&cfg.BaseURL, "base-url", "http://127.0.0.1:10000/v1", "OpenAI base URL to load")
	fs.StringVar(&cfg.Model, "model", "", "model to ask for (default: the first the base URL lists)")
	fs.StringVar(&cfg.APIKey, "api-key", "", "bearer token to send")
	fs.IntVar(&cfg.Concurrency, "concurrency", 1, "requests kept in flight (1: sequential)")
	fs.IntVar(&cfg.Concurrency, "c", 1, "short for --concurrency")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to start requests (0: until --requests; with --requests alone, no limit)")
	fs.DurationVar(&cfg.Duration, "d", 10*time.Second, "short for --duration")
	fs.IntVar(&cfg.Requests, "requests", 0, "how many requests in all (0: as many as --duration allows)")
	fs.IntVar(&cfg.Requests, "n", 0, "short for --requests")
	fs.Float64Var(&cfg.StreamShare, "stream", 0.5, "share of requests that stream, 0 to 1")
	fs.IntVar(&cfg.PromptWords, "prompt-words", 32, "prompt length in words (about as many tokens)")
	fs.IntVar(&cfg.MaxTokens, "max-tokens", 16, "output length: max_tokens of each request")
	fs.DurationVar(&cfg.Timeout, "timeout", time.Minute, "limit of each request")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a base URL outside loopback (127.0.0.0/8, ::1): only load servers you run")
	var baselines list
	fs.Var(&baselines, "baseline", "base URL to load the same way first, for comparison (repeatable; e.g. the engine, a bare relay)")
	asJSON := fs.Bool("json", false, "print the result as JSON (with --baseline, an array of results in run order)")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	timed := false
	fs.Visit(func(f *flag.Flag) { timed = timed || f.Name == "d" || f.Name == "duration" })
	if cfg.Requests > 0 && !timed {
		cfg.Duration = 0 // a count alone runs to its end
	}

	var runs []*bench.Result
	for _, url := range append(baselines, cfg.BaseURL) {
		c := cfg
		c.BaseURL = url
		if !*quiet {
			fmt.Fprintf(os.Stderr, "cocoon bench: %s\n", url)
			c.Progress = bench.ProgressWriter(os.Stderr, isTerminal(os.Stderr))
		}
		r, err := bench.Run(ctx, c)
		if err != nil {
			return err
		}
		runs = append(runs, r)
		if !*asJSON {
			fmt.Println()
			r.WriteText(os.Stdout)
		}
		if r.Interrupted {
			break
		}
	}
	switch {
	case *asJSON && len(baselines) == 0:
		return json.NewEncoder(os.Stdout).Encode(runs[0])
	case *asJSON:
		return json.NewEncoder(os.Stdout).Encode(runs)
	case len(runs) > 1:
		fmt.Println("\ncomparison (same load, one after another):")
		return bench.WriteComparison(os.Stdout, runs)
	}
	return nil
}

func runBenchEngine(ctx context.Context, args []string) error {
	fs, _ := newFlags("bench engine", "Serves an OpenAI-compatible engine for load tests on loopback: every chat completion is\nanswered at once with max_tokens tokens, so a benchmark measures what sits in front of it.")
	addr := fs.String("addr", "127.0.0.1:8000", "loopback address to listen on (port 0 picks one)")
	e := &bench.Engine{}
	fs.StringVar(&e.Model, "model", bench.DefaultEngineModel, "the model it serves")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := bench.StartEngine(*addr, e)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("bench engine: %s (model %s); Ctrl-C to stop\n", s.URL, e.Model)
	<-ctx.Done()
	return nil
}

func runBenchRelay(ctx context.Context, args []string) error {
	fs, _ := newFlags("bench relay", "Serves a bare relay on loopback for comparison: --hops httputil.ReverseProxy servers chained\nin front of --engine-url, nothing else (no sealing, no money), as the baseline for what a\nnetwork of relays adds. Point `cocoon bench --baseline` at the URL it prints.")
	addr := fs.String("addr", "127.0.0.1:0", "loopback address of the first hop (port 0 picks one)")
	engine := fs.String("engine-url", "", "base URL of the engine to relay to, e.g. http://127.0.0.1:8000/v1")
	hops := fs.Int("hops", 2, "reverse proxies in the chain")
	allowRemote := fs.Bool("allow-remote", false, "allow an engine outside loopback")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *engine == "" {
		return fmt.Errorf("--engine-url is required")
	}
	s, err := bench.StartRelay(*addr, *engine, *hops, *allowRemote)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("bench relay: %s (%d hops to %s); Ctrl-C to stop\n", s.URL, *hops, *engine)
	<-ctx.Done()
	return nil
}

// isTerminal reports whether f is a terminal, for redrawing a progress bar
// in place.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
