//go:build !linux

package tsm

import (
	"fmt"
	"runtime"
)

// deviceProducer fails: the guest devices are Linux's.
func deviceProducer(kind, dev string) func([64]byte) ([]byte, error) {
	return func([64]byte) ([]byte, error) {
		return nil, fmt.Errorf("%s: guest devices are read on Linux only, not %s", dev, runtime.GOOS)
	}
}
