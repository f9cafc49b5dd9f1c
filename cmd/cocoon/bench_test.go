package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cocoon-go/cocoon/bench"
)

// TestBenchCommands serves the load-test engine and a bare relay as
// processes, loads both with `cocoon bench --json` and reads the results.
func TestBenchCommands(t *testing.T) {
	engine := start(t, "engine", "bench", "engine", "--addr", "127.0.0.1:0", "--model", "m1")
	engineURL := engine.await(t, `bench engine: (http://\S+/v1)`)[1]
	relay := start(t, "relay", "bench", "relay", "--engine-url", engineURL)
	relayURL := relay.await(t, `bench relay: (http://\S+/v1) \(2 hops`)[1]

	out, errOut, err := cocoon("bench", "--base-url", relayURL, "-n", "24", "-c", "4", "--stream", "0.25", "--max-tokens", "3", "--json")
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, errOut)
	}
	var r bench.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if r.Model != "m1" || r.Requests != 24 || r.Succeeded != 24 || r.Streamed != 6 || r.CompletionTokens != 72 ||
		r.Latency.N != 24 || r.TTFT.N != 6 || r.Latency.P50 <= 0 || r.RequestsPerSecond <= 0 || r.Elapsed <= 0 {
		t.Errorf("result %+v", r)
	}
	if !strings.Contains(errOut, "bench: 100%") {
		t.Errorf("no progress lines on stderr:\n%s", errOut)
	}

	// With baselines, one result per base URL, in run order.
	out, errOut, err = cocoon("bench", "--baseline", engineURL, "--base-url", relayURL, "-n", "5", "--json", "--quiet")
	if err != nil {
		t.Fatalf("bench --baseline: %v\n%s", err, errOut)
	}
	var runs []bench.Result
	if err := json.Unmarshal([]byte(out), &runs); err != nil || len(runs) != 2 || runs[0].BaseURL != engineURL || runs[1].BaseURL != relayURL || runs[1].Succeeded != 5 {
		t.Errorf("--baseline --json: %v %+v\n%s", err, runs, out)
	}
	if errOut != "" {
		t.Errorf("--quiet wrote %q", errOut)
	}

	// Load goes to loopback only, unless asked.
	if _, errOut, err := cocoon("bench", "--base-url", "http://192.0.2.1/v1", "-n", "1"); err == nil || !strings.Contains(errOut, "loopback") {
		t.Errorf("a remote base URL: %v %s", err, errOut)
	}
	engine.stop(t)
	relay.stop(t)
}
