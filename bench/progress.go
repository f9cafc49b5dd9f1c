package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// ProgressWriter returns a Config.Progress that shows a run's progress on
// w: on a terminal, a bar redrawn in place; elsewhere (a log, a pipe), a
// plain line a second.
func ProgressWriter(w io.Writer, terminal bool) func(Progress) {
	var nextLine time.Duration
	return func(p Progress) {
		rate := 0.0
		if s := p.Elapsed.Seconds(); s > 0 {
			rate = float64(p.Succeeded) / s
		}
		status := fmt.Sprintf("%6.1fs  %d ok  %d failed  %d in flight  %.0f req/s", p.Elapsed.Seconds(), p.Succeeded, p.Failed, p.InFlight, rate)
		if !terminal {
			if p.Final || p.Elapsed >= nextLine {
				fmt.Fprintf(w, "bench: %3.0f%% %s\n", 100*p.Fraction, status)
				nextLine = p.Elapsed.Truncate(time.Second) + time.Second
			}
			return
		}
		const width = 30
		n := int(p.Fraction * width)
		end := ""
		if p.Final {
			end = "\n"
		}
		fmt.Fprintf(w, "\r[%s%s] %3.0f%% %s\x1b[K%s", strings.Repeat("=", n), strings.Repeat(" ", width-n), 100*p.Fraction, status, end)
	}
}
