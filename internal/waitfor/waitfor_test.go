package waitfor

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// A condition that comes true is waited for as long as it takes, no longer.
func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ready atomic.Bool
		time.AfterFunc(time.Second, func() { ready.Store(true) })
		start := time.Now()
		Until(t, "ready", ready.Load)
		if took := time.Since(start); took < time.Second || took > time.Second+poll {
			t.Errorf("waited %v for a condition true after 1s", took)
		}
	})
}

// Value returns the last value got: the one that passed, or after Timeout
// the one that did not, for the caller's check to report.
func TestValueReturnsTheLastValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var n atomic.Int32
		if got := Value(func() int32 { return n.Add(1) }, func(v int32) bool { return v == 3 }); got != 3 {
			t.Errorf("Value = %d, want 3", got)
		}
		start := time.Now()
		if got := Value(func() int32 { return 7 }, func(v int32) bool { return v == 0 }); got != 7 {
			t.Errorf("Value of a condition never met = %d, want the last value 7", got)
		}
		if took := time.Since(start); took < Timeout {
			t.Errorf("gave up after %v, before Timeout", took)
		}
	})
}

// recorder is a testing.TB that records a failure instead of stopping.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.failed = format }

// A condition that never holds fails the test after Timeout.
func TestUntilFailsAfterTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{TB: t}
		start := time.Now()
		Until(r, "nothing", func() bool { return false })
		if r.failed == "" || time.Since(start) < Timeout {
			t.Errorf("failed %q after %v; want a failure after %v", r.failed, time.Since(start), Timeout)
		}
	})
}
