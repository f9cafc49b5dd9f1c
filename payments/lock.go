package payments

import (
	"errors"
	"fmt"
	"os"

	"github.com/cocoon-go/cocoon/internal/atomicfile"
)

// lockFile takes the lock that keeps one channel end to one user.
func lockFile(name string) (*os.File, error) {
	f, err := atomicfile.Lock(name)
	if errors.Is(err, atomicfile.ErrLocked) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, name)
	}
	if err != nil {
		return nil, fmt.Errorf("payments: %w", err)
	}
	return f, nil
}
