package payments

import (
	"context"
	"fmt"
	"os"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
)

// Find reads the channel at addr from c and returns the configuration it
// was opened with, checked to give that very address: the account runs the
// channel code with the data its config says, so its state can be trusted.
// A Collector uses it to learn of a channel from the first voucher on it.
func Find(ctx context.Context, c chain.Chain, addr string) (contracts.ChannelConfig, *contracts.ChannelState, error) {
	a, err := address.ParseAddr(addr)
	if err != nil {
		return contracts.ChannelConfig{}, nil, fmt.Errorf("payments: channel address %q: %w", addr, err)
	}
	state, err := State(ctx, c, a)
	if err != nil {
		return contracts.ChannelConfig{}, nil, err
	}
	cfg := state.Config()
	if want, err := cfg.Address(); err != nil || !want.Equals(a) {
		return cfg, nil, fmt.Errorf("%w: account %s", ErrNotChannel, addr)
	}
	return cfg, state, nil
}

// maxNonce bounds the channels Usable looks at for one payer and payee.
const maxNonce = 1000

// Usable returns ch with the first nonce, from 1, that a payer may pay
// through: a channel that is open, or one not deployed yet that the payer
// has never used (it has no store in dir, see ChannelDir); state is nil for
// the latter, which the payer then opens. Channels that are closing or
// closed are passed over: a payer whose channel is closing pays through a
// new one, since its payee stops serving on the old. A used address is
// never deployed again, even if its account is gone: its vouchers' totals
// would count from zero on a fresh contract.
func Usable(ctx context.Context, c chain.Chain, ch contracts.ChannelConfig, dir string) (_ contracts.ChannelConfig, state *contracts.ChannelState, _ error) {
	for nonce := uint64(1); nonce <= maxNonce; nonce++ {
		ch.Nonce = nonce
		addr, err := ch.Address()
		if err != nil {
			return ch, nil, err
		}
		st, err := State(ctx, c, addr)
		switch {
		case err == nil && st.Status == contracts.ChannelOpen:
			return ch, st, nil
		case err == nil: // closing or closed
			continue
		}
		if _, serr := os.Stat(ChannelDir(dir, addr)); serr == nil {
			continue // used before, and gone from the chain
		}
		return ch, nil, nil
	}
	return ch, nil, fmt.Errorf("payments: no usable channel among nonces 1 to %d", maxNonce)
}
