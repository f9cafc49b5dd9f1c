package payments

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
)

// ErrNoChannel: OpenOrResume found no open channel to resume and was given no deposit to open one.
var ErrNoChannel = errors.New("payments: no open channel")

// OpenOrResume is how every payer gets a channel to pay through: the first usable channel like ch
// (the nonce rule of Usable) whose state is kept under dir, deployed through the payer's wallet w
// with deposit if it is not deployed yet, and its payer end opened with the voucher key key and
// refreshed from the chain. opened says that it was deployed now. With deposit 0 it only resumes,
// and fails with ErrNoChannel where it would have to open.
func OpenOrResume(ctx context.Context, w *chain.Wallet, ch contracts.ChannelConfig, key ed25519.PrivateKey, dir string, deposit uint64) (_ *Payer, opened bool, _ error) {
	cfg, state, err := Usable(ctx, w.Chain(), ch, dir)
	if err != nil {
		return nil, false, err
	}
	if state == nil {
		addr, err := cfg.Address()
		if err != nil {
			return nil, false, fmt.Errorf("payments: %w", err)
		}
		if deposit == 0 {
			return nil, false, fmt.Errorf("%w to %s (channel %d would be %s): give a deposit to open one", ErrNoChannel, ch.Payee, cfg.Nonce, addr)
		}
		if _, err := Open(ctx, w, cfg, deposit); err != nil && !errors.Is(err, ErrAlreadyOpen) {
			return nil, false, err
		}
		opened = true
	}
	p, err := OpenPayer(dir, cfg, key)
	if err != nil {
		return nil, false, err
	}
	if _, err := p.Refresh(ctx, w.Chain()); err != nil {
		p.Close()
		return nil, false, err
	}
	return p, opened, nil
}
