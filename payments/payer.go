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

// reserveSeqnos is how many seqnos a payer takes on disk at once: one durable write per that many
// vouchers, and as many seqnos skipped at most after a crash.
const reserveSeqnos = 1024

// Payer is the paying end of a channel: it signs cumulative vouchers and remembers the last one.
type Payer struct {
	end
	key     ed25519.PrivateKey
	reserve uint64 // seqnos reserved at once: reserveSeqnos
}

// OpenPayer opens (creating if needed) the payer's state of channel ch under dir (in ChannelDir(dir,
// address of ch)); key is the payer's voucher key, whose public half must be ch.PayerKey. A fresh state
// knows no deposit: call SetDeposit or Refresh before Pay.
//
// A payer that was not closed cleanly may have signed vouchers its journal does not hold, with any
// seqno up to its reservation: it goes on past the reservation, at the last total on disk, and its
// newest voucher (Last) is signed afresh at the first seqno after it. Its total may then be below one
// it signed before the crash; the payee, holding that one, answers with it, and CatchUp brings the
// payer level (a Stream does that by itself).
func OpenPayer(dir string, ch contracts.ChannelConfig, key ed25519.PrivateKey) (*Payer, error) {
	p := &Payer{key: key, reserve: reserveSeqnos}
	err := p.open(dir, rolePayer, ch, func(addr *address.Address) error {
		if len(key) != ed25519.PrivateKeySize || !bytes.Equal(key.Public().(ed25519.PublicKey), ch.PayerKey) {
			return fmt.Errorf("payments: payer of channel %s: key is not the channel's payer key", addr)
		}
		return nil
	}, func(s *store, st *state) error {
		if st.Seqno == st.Reserved {
			return nil // closed cleanly, or the journal holds the last reserved seqno
		}
		if st.Reserved == math.MaxUint64 {
			return fmt.Errorf("payments: channel %s: seqno exhausted", rawAddress(mustAddress(ch)))
		}
		st.Seqno = st.Reserved + 1
		st.Reserved = st.Seqno
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// mustAddress is ch's address, which open has already checked it has.
func mustAddress(ch contracts.ChannelConfig) *address.Address {
	addr, _ := ch.Address()
	return addr
}

// Pay accepts a cost of amount nanoTON and returns the voucher for (seqno+1, total+amount), signed.
// It does not wait for the disk: the voucher is in the journal within FlushInterval (Sync waits for
// it); only once per reserveSeqnos vouchers does it first record a new block of seqnos durably, so
// that no seqno is ever signed twice. It refuses with ErrInsufficientDeposit a total above the deposit
// as last known. If it fails, nothing changed and no voucher was given out.
func (p *Payer) Pay(amount uint64) (contracts.SignedVoucher, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.usable(); err != nil {
		return contracts.SignedVoucher{}, err
	}
	if p.st.Total > p.st.Deposit || amount > p.st.Deposit-p.st.Total {
		return contracts.SignedVoucher{}, fmt.Errorf("%w: channel %s: %d paid + %d > deposit %d",
			ErrInsufficientDeposit, p.addr, p.st.Total, amount, p.st.Deposit)
	}
	return p.next(amount, fmt.Sprintf("pay %d", amount))
}

// next signs (seqno+1, total+amount), reserving seqnos on disk first if none is left; p.mu held.
func (p *Payer) next(amount uint64, op string) (contracts.SignedVoucher, error) {
	if p.st.Seqno == math.MaxUint64 {
		return contracts.SignedVoucher{}, fmt.Errorf("payments: channel %s: seqno exhausted", p.addr)
	}
	if p.st.Seqno == p.st.Reserved {
		next := p.st
		next.Reserved += min(p.reserve, math.MaxUint64-next.Reserved)
		if err := p.save(&next, op+": reserve seqnos"); err != nil {
			return contracts.SignedVoucher{}, err
		}
		if p.crashed("reserved") {
			return contracts.SignedVoucher{}, errSimulatedCrash
		}
	}
	next := p.st
	next.Seqno++
	next.Total += amount
	p.keep(&next)
	return p.sign(), nil
}

func (p *Payer) sign() contracts.SignedVoucher {
	return contracts.Voucher{ChannelID: p.id, Seqno: p.st.Seqno, Total: p.st.Total}.Sign(p.key)
}

// Last returns the last voucher Pay signed, signed again (the same bytes, as Ed25519 is
// deterministic), so that it can be re-sent; ErrNoVoucher before the first Pay.
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

// CatchUp takes v, a voucher the payee holds (it answers a voucher below it with it: see
// StaleVoucherError), and brings the payer level with it: if v's total is above the payer's, the
// payer signs that total at its next seqno and returns the new voucher, and true. v must be this
// channel's and signed by the payer's key, so it is a promise the payer has made already, lost in a
// crash before it reached the journal; taking it on pays nothing twice, since vouchers are cumulative.
// A voucher with a seqno above the payer's last means its state was lost or is an old copy:
// ErrStateBehind.
func (p *Payer) CatchUp(v contracts.SignedVoucher) (contracts.SignedVoucher, bool, error) {
	if v.ChannelID != p.id {
		return contracts.SignedVoucher{}, false, fmt.Errorf("%w: voucher for %x, this is channel %s", ErrWrongChannel, v.ChannelID, p.addr)
	}
	if !v.Verify(p.ch.PayerKey) {
		return contracts.SignedVoucher{}, false, fmt.Errorf("%w: channel %s, voucher seqno %d, total %d", ErrBadSignature, p.addr, v.Seqno, v.Total)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.usable(); err != nil {
		return contracts.SignedVoucher{}, false, err
	}
	return p.catchUp(v.Seqno, v.Total)
}

// catchUp brings the payer level with a voucher (seqno, total) it signed; p.mu held.
func (p *Payer) catchUp(seqno, total uint64) (contracts.SignedVoucher, bool, error) {
	// Every seqno the payer may have signed is at most its last one, even after a crash (OpenPayer).
	if seqno > p.st.Seqno || (seqno == p.st.Seqno && total != p.st.Total) {
		return contracts.SignedVoucher{}, false, fmt.Errorf("%w: channel %s holds seqno %d, total %d; this state signed up to seqno %d, total %d",
			ErrStateBehind, p.addr, seqno, total, p.st.Seqno, p.st.Total)
	}
	if total <= p.st.Total {
		return contracts.SignedVoucher{}, false, nil
	}
	v, err := p.next(total-p.st.Total, fmt.Sprintf("catch up to total %d", total))
	return v, err == nil, err
}

// Refresh reads the channel's state from c and records its deposit. If the chain has paid a total
// the payer had signed but lost in a crash, the payer catches up with it (see CatchUp). It fails with
// ErrStateBehind if the chain has claimed a seqno above this state's last, which means the state was
// lost or is an old copy.
func (p *Payer) Refresh(ctx context.Context, c chain.Chain) (*contracts.ChannelState, error) {
	return p.refresh(ctx, c, func(st *contracts.ChannelState) error {
		if p.closed {
			return p.errClosed()
		}
		if st.Seqno > 0 {
			if _, _, err := p.catchUp(st.Seqno, st.Claimed); err != nil {
				return err
			}
		}
		return p.setDeposit(st.Deposit)
	})
}

// Close puts the newest voucher on disk, gives back the seqnos reserved and not used (a payer
// closed cleanly goes on from its last seqno), and releases the state.
func (p *Payer) Close() error {
	return p.closeWith(func(st *state) { st.Reserved = st.Seqno })
}
