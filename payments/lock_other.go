//go:build !unix

package payments

import (
	"fmt"
	"os"
)

// lockFile opens name; without flock, nothing stops a second process from using the same state.
func lockFile(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("payments: %w", err)
	}
	return f, nil
}
