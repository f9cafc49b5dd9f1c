package local

import (
	"errors"
	"fmt"
	"os"

	"github.com/cocoon-go/cocoon/internal/atomicfile"
)

// lockDir takes the lock that keeps a chain directory to one process.
func lockDir(name string) (*os.File, error) {
	f, err := atomicfile.Lock(name)
	if errors.Is(err, atomicfile.ErrLocked) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, name)
	}
	if err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	return f, nil
}
