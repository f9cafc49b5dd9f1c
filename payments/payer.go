package payments

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"math"
	"sync"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
)

// Payer is the paying end of a channel: it signs cumulative vouchers and remembers the last one.
type Payer struct {
	ch   contracts.ChannelConfig
	addr *address.Address
	id   [32]byte
	key  ed25519.PrivateKey

	mu     sync.Mutex
	store  *store
	st     state
	closed bool
	// crashed lets tests stop Pay after the state is saved, before the voucher is returned.
	crashed func(point string) bool
}

// OpenPayer opens (creating if needed) the payer's state of channel ch under dir (in ChannelDir(dir,
// address of ch)); key is the payer's voucher key, whose public half must be ch.PayerKey. A fresh state
// knows no deposit: call SetDeposit or Refresh before Pay.
func OpenPayer(dir string, ch contracts.ChannelConfig, key ed25519.PrivateKey) (*Payer, error) {
	addr, err := ch.Address()
	if err != nil {
		return nil, fmt.Errorf("payments: payer: %w", err)
	}
	if len(key) != ed25519.PrivateKeySize || !bytes.Equal(key.Public().(ed25519.PublicKey), ch.PayerKey) {
		return nil, fmt.Errorf("payments: payer of channel %s: key is not the channel's payer key", addr)
	}
	id, _ := ch.ID()
	s, st, err := openStore(dir, rolePayer, addr)
	if err != nil {
		return nil, err
	}
	return &Payer{ch: ch, addr: addr, id: id, key: key, store: s, st: *st, crashed: func(string) bool { return false }}, nil
}

// Address is the channel's address.
func (p *Payer) Address() *address.Address { return p.addr }

// Pay accepts a cost of amount nanoTON: it records (seqno+1, total+amount) durably, then returns
// the voucher for it, signed. It refuses with ErrInsufficientDeposit a total above the deposit as last
// known. If it fails, no voucher was given out and the next Pay may use the same seqno.
func (p *Payer) Pay(amount uint64) (contracts.SignedVoucher, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return contracts.SignedVoucher{}, fmt.Errorf("%w: payer of channel %s", ErrClosed, p.addr)
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
	if err := p.store.save(&next); err != nil {
		return contracts.SignedVoucher{}, fmt.Errorf("payments: pay %d on channel %s: %w", amount, p.addr, err)
	}
	p.st = next
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
func (p *Payer) Seqno() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.Seqno
}

// Total is what the payer has promised in all, in nanoTON.
func (p *Payer) Total() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.Total
}

// Deposit is the channel's deposit as last known, in nanoTON.
func (p *Payer) Deposit() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.st.Deposit
}

// SetDeposit records the channel's deposit, after a top-up or reading the chain (see Refresh).
func (p *Payer) SetDeposit(deposit uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.setDeposit(deposit)
}

func (p *Payer) setDeposit(deposit uint64) error {
	if p.closed {
		return fmt.Errorf("%w: payer of channel %s", ErrClosed, p.addr)
	}
	if deposit == p.st.Deposit {
		return nil
	}
	next := p.st
	next.Deposit = deposit
	if err := p.store.save(&next); err != nil {
		return fmt.Errorf("payments: set deposit of channel %s to %d: %w", p.addr, deposit, err)
	}
	p.st = next
	return nil
}

// Refresh reads the channel's state from c and records its deposit. It fails with ErrStateBehind if the
// chain has claimed a voucher this state does not know, which means the state was lost or is an old copy.
func (p *Payer) Refresh(ctx context.Context, c chain.Chain) (*contracts.ChannelState, error) {
	st, err := State(ctx, c, p.addr)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if st.Seqno > p.st.Seqno || st.Claimed > p.st.Total {
		return st, fmt.Errorf("%w: channel %s has claimed seqno %d, total %d; this state signed up to seqno %d, total %d",
			ErrStateBehind, p.addr, st.Seqno, st.Claimed, p.st.Seqno, p.st.Total)
	}
	return st, p.setDeposit(st.Deposit)
}

// Close releases the state. The Payer cannot be used after it.
func (p *Payer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	return p.store.close()
}
