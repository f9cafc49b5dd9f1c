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
	// opened and base are the seqno and the total the payer opened at. Every voucher it signed
	// before has a seqno up to opened; one with a total above base was lost in a crash, and what it
	// paid above base is owed on top of everything signed since (CatchUp).
	opened, base uint64
	// unsure is set when the payer opened after a crash, until it has heard what its payee holds
	// (CatchUp): a voucher it signed before might then pay less than one the payee holds, and the
	// payee, seeing a higher total, would never tell.
	unsure bool
}

// OpenPayer opens (creating if needed) the payer's state of channel ch under dir (in ChannelDir(dir,
// address of ch)); key is the payer's voucher key, whose public half must be ch.PayerKey. A fresh state
// knows no deposit: call SetDeposit or Refresh before Pay.
//
// A payer that was not closed cleanly may have signed vouchers its journal does not hold, with any
// seqno up to its reservation: it goes on past the reservation, at the last total on disk, and its
// newest voucher (Last) is signed afresh at the first seqno after it. Its total may then be below one
// it signed before the crash, so it pays nothing more (ErrNotCaughtUp) until it has posted Last and
// passed the payee's answer to CatchUp: the payee's newest voucher, or Last itself if the payee took
// it. A Stream does that by itself.
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
			return fmt.Errorf("payments: channel %s: seqno exhausted", st.Channel)
		}
		st.Seqno = st.Reserved + 1
		st.Reserved = st.Seqno
		p.unsure = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.opened, p.base = p.st.Seqno, p.st.Total
	return p, nil
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
	if p.unsure {
		return contracts.SignedVoucher{}, fmt.Errorf("%w: channel %s, restarted at seqno %d", ErrNotCaughtUp, p.addr, p.opened)
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
	if amount > math.MaxUint64-p.st.Total {
		return contracts.SignedVoucher{}, fmt.Errorf("payments: channel %s: total %d + %d overflows", p.addr, p.st.Total, amount)
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

// mustCatchUp reports whether the payer waits for CatchUp before it pays (see OpenPayer).
func (p *Payer) mustCatchUp() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unsure
}

// Seqno is the seqno of the last voucher signed; 0 before the first.
func (p *Payer) Seqno() uint64 { return p.state().Seqno }

// CatchUp takes v, the newest voucher the payee holds — what it answers a voucher below it with (see
// StaleVoucherError), or the payer's own Last once the payee has taken it — and brings the payer
// level with it; after it, a payer restarted after a crash pays again. v must be this channel's and signed by the
// payer's key, so it is a promise the payer has made already. If the payer signed it before it was
// opened and v's total is above the total it opened at, the difference was lost in a crash before it
// reached the journal: the payer signs it, on top of what it has paid since, at its next seqno, and
// returns the new voucher and true. Otherwise it changes nothing (false). Nothing is paid twice:
// what is added is what v pays beyond the payer's own record, once. A voucher with a seqno above the
// payer's last means its state was lost or is an old copy: ErrStateBehind.
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
	caught, ok, err := p.catchUp(v.Seqno, v.Total)
	if err == nil {
		p.unsure = false
	}
	return caught, ok, err
}

// catchUp brings the payer level with a voucher (seqno, total) it signed; p.mu held.
func (p *Payer) catchUp(seqno, total uint64) (contracts.SignedVoucher, bool, error) {
	// Every seqno the payer may have signed is at most its last one, even after a crash (OpenPayer),
	// and what it signed since it opened it knows.
	if seqno > p.st.Seqno || (seqno == p.st.Seqno && total != p.st.Total) || (seqno > p.opened && total > p.st.Total) {
		return contracts.SignedVoucher{}, false, fmt.Errorf("%w: channel %s holds seqno %d, total %d; this state signed up to seqno %d, total %d",
			ErrStateBehind, p.addr, seqno, total, p.st.Seqno, p.st.Total)
	}
	if seqno > p.opened || total <= p.base {
		return contracts.SignedVoucher{}, false, nil
	}
	v, err := p.next(total-p.base, fmt.Sprintf("catch up with seqno %d, total %d", seqno, total))
	if err != nil {
		return contracts.SignedVoucher{}, false, err
	}
	p.base = total
	return v, true, nil
}

// Refresh reads the channel's state from c and records its deposit. If the chain has paid a total
// the payer had signed but lost in a crash, the payer catches up with it as CatchUp does (but the
// payee may hold more than it claimed, so a payer restarted after a crash still waits for the
// payee's answer before it pays). It fails with
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
