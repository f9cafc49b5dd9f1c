package payments

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"math"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
)

// Payer is the paying end of a channel: it signs cumulative vouchers and remembers the last one.
type Payer struct {
	end
	key ed25519.PrivateKey
}

// OpenPayer opens (creating if needed) the payer's state of channel ch under dir (in ChannelDir(dir,
// address of ch)); key is the payer's voucher key, whose public half must be ch.PayerKey. A fresh state
// knows no deposit: call SetDeposit or Refresh before Pay.
func OpenPayer(dir string, ch contracts.ChannelConfig, key ed25519.PrivateKey) (*Payer, error) {
	p := &Payer{key: key}
	err := p.open(dir, rolePayer, ch, func(addr *address.Address) error {
		if len(key) != ed25519.PrivateKeySize || !bytes.Equal(key.Public().(ed25519.PublicKey), ch.PayerKey) {
			return fmt.Errorf("payments: payer of channel %s: key is not the channel's payer key", addr)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Pay accepts a cost of amount nanoTON: it records (seqno+1, total+amount) durably, then returns
// the voucher for it, signed. It refuses with ErrInsufficientDeposit a total above the deposit as last
// known. If it fails, no voucher was given out and the next Pay may use the same seqno.
func (p *Payer) Pay(amount uint64) (contracts.SignedVoucher, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return contracts.SignedVoucher{}, p.errClosed()
	}
	if p.st.Total > p.st.Deposit || amount > p.st.Deposit-p.st.Total {
		return contracts.SignedVoucher{}, fmt.Errorf("%w: channel %s: %d paid + %d > deposit %d",
			ErrInsufficientDeposit, p.addr, p.st.Total, amount, p.st.Deposit)
	}
	if p.st.Seqno == math.MaxUint64 {
		return contracts.SignedVoucher{}, fmt.Errorf("payments: channel %s: seqno exhausted", p.addr)
	}
	next := p.st
	next.Seqno++
	next.Total += amount
	if err := p.save(&next, fmt.Sprintf("pay %d", amount)); err != nil {
		return contracts.SignedVoucher{}, err
	}
	if p.crashed("saved") {
		return contracts.SignedVoucher{}, errSimulatedCrash
	}
	return p.sign(), nil
}

func (p *Payer) sign() contracts.SignedVoucher {
	return contracts.Voucher{ChannelID: p.id, Seqno: p.st.Seqno, Total: p.st.Total}.Sign(p.key)
}

// Last returns the last voucher Pay recorded, signed again (the same bytes, as Ed25519 is
// deterministic), so that it can be re-sent after a restart; ErrNoVoucher before the first Pay.
func (p *Payer) Last() (contracts.SignedVoucher, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st.Seqno == 0 {
		return contracts.SignedVoucher{}, fmt.Errorf("%w: channel %s", ErrNoVoucher, p.addr)
	}
	return p.sign(), nil
}

// Seqno is the seqno of the last voucher signed; 0 before the first.
func (p *Payer) Seqno() uint64 { return p.state().Seqno }

// Refresh reads the channel's state from c and records its deposit. It fails with ErrStateBehind if the
// chain has claimed a voucher this state does not know, which means the state was lost or is an old copy.
func (p *Payer) Refresh(ctx context.Context, c chain.Chain) (*contracts.ChannelState, error) {
	return p.refresh(ctx, c, func(st *contracts.ChannelState) error {
		if st.Seqno > p.st.Seqno || st.Claimed > p.st.Total {
			return fmt.Errorf("%w: channel %s has claimed seqno %d, total %d; this state signed up to seqno %d, total %d",
				ErrStateBehind, p.addr, st.Seqno, st.Claimed, p.st.Seqno, p.st.Total)
		}
		return p.setDeposit(st.Deposit)
	})
}
