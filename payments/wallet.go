package payments

import (
	"sync"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
)

// Wallet is a chain.Wallet whose sends go one at a time: a chain.Wallet is
// not safe for concurrent use, and a role shares one between its claims (a
// Collector's) and the channels it opens (the proxy's to its workers).
type Wallet struct {
	w  *chain.Wallet
	mu sync.Mutex
}

// NewWallet serializes the sends of w.
func NewWallet(w *chain.Wallet) *Wallet { return &Wallet{w: w} }

// Address is the wallet's address.
func (w *Wallet) Address() *address.Address { return w.w.Address() }

// Chain is the chain the wallet is on.
func (w *Wallet) Chain() chain.Chain { return w.w.Chain() }

// Do runs f with the wallet, after every f before it has returned.
func (w *Wallet) Do(f func(*chain.Wallet) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return f(w.w)
}
