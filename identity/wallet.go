package identity

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// ErrNoKey is returned by LoadWalletKey for a key file that does not exist.
var ErrNoKey = errors.New("identity: no key file")

// LoadWalletKey reads the Ed25519 key of a wallet from path (PEM, PKCS #8, as CreateWalletKey writes it).
func LoadWalletKey(path string) (ed25519.PrivateKey, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s (create one with 'cocoon wallet new --key %s')", ErrNoKey, path, path)
	}
	return Ed25519(path)
}

// CreateWalletKey creates a new Ed25519 wallet key at path, readable only by its owner (mode 0600).
// It refuses to overwrite a file that exists: losing a wallet key loses the wallet's money.
func CreateWalletKey(path string) (ed25519.PrivateKey, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("identity: %s already exists; not overwriting a key", path)
	}
	return Ed25519(path)
}
