//go:build unix

package payments

import "syscall"

// cpuTime is the CPU time (user and system) this process has used so far, in nanoseconds; it counts
// every goroutine, background flushes included.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
