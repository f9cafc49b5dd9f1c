package payments

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
)

// ErrUnverifiedPayee: a payer was about to open a channel to a payee it has no reason to trust.
// Without a pinned TLS key a client cannot tell its proxy from a man in the middle, which would name
// its own wallet and key as the payee and take the deposit.
var ErrUnverifiedPayee = errors.New("payments: payee not verified (pin the proxy's TLS key, or name a root contract it is registered in)")

// RegisteredProxy checks that a proxy reached at endpoint, which names wallet and key as the payee
// of its channels, is registered so in the root contract at root: the registry maps the proxy's
// wallet to its Ed25519 key and its endpoint. The root holds no TLS key, so what it vouches for is
// that whoever takes the channel's vouchers is a registered proxy announcing the endpoint the client
// dialed; an intermediary cannot name itself without being registered by the root's owner.
func RegisteredProxy(ctx context.Context, c chain.Chain, root, wallet *address.Address, key ed25519.PublicKey, endpoint string) error {
	vals, err := c.RunGetMethod(ctx, root, contracts.GetProxy, contracts.AddressArg(wallet))
	if err != nil {
		return fmt.Errorf("payments: root %s: %s: %w", root, contracts.GetProxy, err)
	}
	p, found, err := contracts.ParseProxy(wallet, vals)
	if err != nil {
		return fmt.Errorf("payments: root %s: %w", root, err)
	}
	switch {
	case !found:
		return fmt.Errorf("%w: %s is not a proxy registered in root %s", ErrUnverifiedPayee, wallet, root)
	case !bytes.Equal(p.PublicKey, key):
		return fmt.Errorf("%w: proxy %s is registered with key %x, it names %x", ErrUnverifiedPayee, wallet, []byte(p.PublicKey), []byte(key))
	case strings.TrimSuffix(p.Endpoint, "/") != strings.TrimSuffix(endpoint, "/"):
		return fmt.Errorf("%w: proxy %s is registered at %s, it was reached at %s", ErrUnverifiedPayee, wallet, p.Endpoint, endpoint)
	}
	return nil
}
