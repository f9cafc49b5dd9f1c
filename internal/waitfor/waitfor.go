// Package waitfor waits, in tests, for a condition that nothing signals: a
// role's books or directory over real sockets and processes, where a
// testing/synctest bubble cannot run. It polls with a bounded deadline, so a
// test waits only as long as the condition takes and fails instead of
// hanging. Where the code exposes an event (a channel, a callback), wait on
// that; where time is the subject, use synctest.
package waitfor

import (
	"testing"
	"time"
)

// Timeout bounds every wait: long enough for a loaded CI machine, short
// enough for a test to fail rather than hang.
const Timeout = 10 * time.Second

// poll is how often a condition is looked at.
const poll = 2 * time.Millisecond

// Until waits until cond holds, and fails t, saying what it waited for, if
// it does not within Timeout.
func Until(t testing.TB, what string, cond func() bool) {
	t.Helper()
	if !Holds(cond) {
		t.Fatalf("waited %v for %s", Timeout, what)
	}
}

// Holds waits until cond holds, at most Timeout, and reports whether it
// did: for a caller that says more than Until would when it does not.
func Holds(cond func() bool) bool {
	deadline := time.Now().Add(Timeout)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}

// Value waits until ok holds of what get returns, at most Timeout, and
// returns the last value got: the caller's own check then fails with it
// when it never came.
func Value[T any](get func() T, ok func(T) bool) T {
	v := get()
	Holds(func() bool {
		if ok(v) {
			return true
		}
		v = get()
		return ok(v)
	})
	return v
}
