//go:build !unix

package atomicfile

import "os"

// Lock opens name; without flock, nothing stops a second process from
// using what it guards.
func Lock(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
}
