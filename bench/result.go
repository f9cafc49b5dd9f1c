package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Result is what a run measured. Its JSON form (for scripts) gives
// durations in milliseconds and rates per second.
type Result struct {
	BaseURL     string  `json:"base_url"`
	Model       string  `json:"model"`
	Concurrency int     `json:"concurrency"`
	StreamShare float64 `json:"stream_share"`
	PromptWords int     `json:"prompt_words"`
	MaxTokens   int     `json:"max_tokens"`

	// Elapsed runs from the first request sent to the last one finished.
	Elapsed     time.Duration `json:"-"`
	Interrupted bool          `json:"interrupted,omitempty"`

	Requests  int `json:"requests"` // finished, with or without error
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Streamed  int `json:"streamed"` // successful streams

	// RequestsPerSecond counts successful requests only.
	RequestsPerSecond float64 `json:"requests_per_second"`
	// PromptTokens and CompletionTokens are the sums of the successful
	// answers' usage; OutputTokensPerSecond is CompletionTokens per second.
	PromptTokens          uint64  `json:"prompt_tokens"`
	CompletionTokens      uint64  `json:"completion_tokens"`
	OutputTokensPerSecond float64 `json:"output_tokens_per_second"`

	// Latency is end to end, over all successful requests; TTFT over the
	// successful streams that had content.
	Latency Quantiles `json:"latency"`
	TTFT    Quantiles `json:"ttft"`

	// Errors are counted by kind, most frequent first.
	Errors []ErrorCount `json:"errors"`
}

// ErrorCount is how many requests failed with one kind of error, with the
// text of the first of them.
type ErrorCount struct {
	Kind    string `json:"kind"`
	Count   int    `json:"count"`
	Example string `json:"example"`
}

// Quantiles summarizes a set of durations exactly (see the package doc).
type Quantiles struct {
	N                        int
	Min, Mean, P50, P90, P99 time.Duration
	Max                      time.Duration
}

// NewQuantiles computes the quantiles of samples, which it sorts in place.
func NewQuantiles(samples []time.Duration) Quantiles {
	if len(samples) == 0 {
		return Quantiles{}
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	return Quantiles{N: len(samples), Min: samples[0], Max: samples[len(samples)-1],
		Mean: sum / time.Duration(len(samples)),
		P50:  rank(samples, 0.50), P90: rank(samples, 0.90), P99: rank(samples, 0.99)}
}

// rank is the p-quantile of sorted by nearest rank: sorted[⌈p·n⌉-1].
func rank(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

type quantilesJSON struct {
	N    int     `json:"n"`
	Min  float64 `json:"min_ms"`
	Mean float64 `json:"mean_ms"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func fromMS(f float64) time.Duration {
	return time.Duration(math.Round(f * float64(time.Millisecond)))
}

// MarshalJSON writes the durations in milliseconds.
func (q Quantiles) MarshalJSON() ([]byte, error) {
	return json.Marshal(quantilesJSON{q.N, ms(q.Min), ms(q.Mean), ms(q.P50), ms(q.P90), ms(q.P99), ms(q.Max)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (q *Quantiles) UnmarshalJSON(b []byte) error {
	var j quantilesJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*q = Quantiles{j.N, fromMS(j.Min), fromMS(j.Mean), fromMS(j.P50), fromMS(j.P90), fromMS(j.P99), fromMS(j.Max)}
	return nil
}

type resultJSON Result

// MarshalJSON adds elapsed_s to the fields.
func (r *Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		*resultJSON
		Elapsed float64 `json:"elapsed_s"`
	}{(*resultJSON)(r), r.Elapsed.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (r *Result) UnmarshalJSON(b []byte) error {
	v := struct {
		*resultJSON
		Elapsed float64 `json:"elapsed_s"`
	}{resultJSON: (*resultJSON)(r)}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	r.Elapsed = time.Duration(v.Elapsed * float64(time.Second))
	return nil
}

// summarize turns a run's samples into its result.
func summarize(cfg Config, samples []sample, elapsed time.Duration) *Result {
	r := &Result{BaseURL: cfg.BaseURL, Model: cfg.Model, Concurrency: cfg.Concurrency, StreamShare: cfg.StreamShare,
		PromptWords: cfg.PromptWords, MaxTokens: cfg.MaxTokens, Elapsed: elapsed, Requests: len(samples), Errors: []ErrorCount{}}
	var lat, ttft []time.Duration
	errs := map[string]int{} // kind → index in r.Errors
	for _, s := range samples {
		if s.kind != "" {
			r.Failed++
			i, ok := errs[s.kind]
			if !ok {
				i = len(r.Errors)
				errs[s.kind] = i
				r.Errors = append(r.Errors, ErrorCount{Kind: s.kind, Example: s.message})
			}
			r.Errors[i].Count++
			continue
		}
		r.Succeeded++
		r.PromptTokens += s.prompt
		r.CompletionTokens += s.completion
		lat = append(lat, s.latency)
		if s.stream {
			r.Streamed++
			if s.ttft > 0 {
				ttft = append(ttft, s.ttft)
			}
		}
	}
	slices.SortStableFunc(r.Errors, func(a, b ErrorCount) int { return cmp.Compare(b.Count, a.Count) })
	r.Latency, r.TTFT = NewQuantiles(lat), NewQuantiles(ttft)
	if sec := elapsed.Seconds(); sec > 0 {
		r.RequestsPerSecond = float64(r.Succeeded) / sec
		r.OutputTokensPerSecond = float64(r.CompletionTokens) / sec
	}
	return r
}

// WriteText writes r for a person to read.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  model %s  concurrency %d  %.0f%% streamed  prompt %d words  max_tokens %d\n",
		r.BaseURL, r.Model, r.Concurrency, 100*r.StreamShare, r.PromptWords, r.MaxTokens)
	if r.Interrupted {
		b.WriteString("INTERRUPTED: requests in flight were abandoned and are not counted\n")
	}
	fmt.Fprintf(&b, "\n  requests   %d in %.2fs: %d ok, %d failed (%.1f%%)\n", r.Requests, r.Elapsed.Seconds(), r.Succeeded, r.Failed, percent(r.Failed, r.Requests))
	fmt.Fprintf(&b, "  req/s      %.1f\n", r.RequestsPerSecond)
	fmt.Fprintf(&b, "  tokens     %d out (%.1f tok/s), %d prompt\n\n", r.CompletionTokens, r.OutputTokensPerSecond, r.PromptTokens)
	fmt.Fprintf(&b, "  %-12s %8s %9s %9s %9s %9s %9s %9s\n", "", "n", "min", "mean", "p50", "p90", "p99", "max")
	for _, row := range []struct {
		name string
		q    Quantiles
	}{{"latency", r.Latency}, {"TTFT", r.TTFT}} {
		fmt.Fprintf(&b, "  %-12s %8d %9s %9s %9s %9s %9s %9s\n", row.name, row.q.N,
			short(row.q.Min), short(row.q.Mean), short(row.q.P50), short(row.q.P90), short(row.q.P99), short(row.q.Max))
	}
	if len(r.Errors) > 0 {
		b.WriteString("\n  errors\n")
		for _, e := range r.Errors {
			fmt.Fprintf(&b, "  %8d  %-36s %.100s\n", e.Count, e.Kind, e.Example)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func percent(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return 100 * float64(n) / float64(of)
}

// short formats d in milliseconds with three significant digits or so.
func short(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	f := ms(d)
	switch {
	case f < 10:
		return fmt.Sprintf("%.2fms", f)
	case f < 100:
		return fmt.Sprintf("%.1fms", f)
	}
	return fmt.Sprintf("%.0fms", f)
}

// WriteComparison writes a table of runs of the same load against different
// base URLs, each against the first: its throughput as a multiple of the
// first's, and what it adds to the first's median latency. With the engine
// itself first, a bare relay second and Cocoon third, the last column is
// what each adds in front of the engine.
func WriteComparison(w io.Writer, runs []*Result) error {
	if len(runs) == 0 {
		return nil
	}
	var b strings.Builder
	first := runs[0]
	fmt.Fprintf(&b, "  %-36s %10s %7s %9s %9s %12s %8s\n", "base URL", "req/s", "×first", "p50", "p99", "p50 added", "failed")
	for _, r := range runs {
		ratio := 0.0
		if first.RequestsPerSecond > 0 {
			ratio = r.RequestsPerSecond / first.RequestsPerSecond
		}
		fmt.Fprintf(&b, "  %-36s %10.1f %7.2f %9s %9s %12s %7.1f%%\n", r.BaseURL, r.RequestsPerSecond, ratio,
			short(r.Latency.P50), short(r.Latency.P99), signed(r.Latency.P50-first.Latency.P50), percent(r.Failed, r.Requests))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// signed formats d like short, with its sign.
func signed(d time.Duration) string {
	switch {
	case d > 0:
		return "+" + short(d)
	case d < 0:
		return "-" + short(-d)
	}
	return "0"
}
