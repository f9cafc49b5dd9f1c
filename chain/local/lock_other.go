//go:build !unix

package local

import (
	"fmt"
	"os"
)

// lockDir opens name; without flock, nothing stops a second process from opening the same directory.
func lockDir(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	return f, nil
}
