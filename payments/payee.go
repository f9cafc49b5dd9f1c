package payments

import (
	"context"
	"fmt"
	"sync"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
)

// Payee is the paid end of a channel: it keeps the newest voucher and claims it on chain.
type Payee struct {
	end
	claimMu sync.Mutex // one Claim at a time; held across chain calls, unlike mu
}

// OpenPayee opens (creating if needed) the payee's state of channel ch under dir (in ChannelDir(dir,
// address of ch)). A fresh state knows no deposit: call SetDeposit or Refresh before Accept.
func OpenPayee(dir string, ch contracts.ChannelConfig) (*Payee, error) {
	p := new(Payee)
	err := p.open(dir, rolePayee, ch, nil, func(s *store, st *state) error {
		id, _ := ch.ID()
		if st.Seqno != 0 && !voucherOf(id, st).Verify(ch.PayerKey) {
			return fmt.Errorf("%w: %s: the newest voucher's signature is not the payer's", ErrCorrupt, s.path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Accept checks a voucher from the payer and, if it is newer than the one kept, keeps it. It does not
// wait for the disk: the voucher is in the journal within FlushInterval (Sync waits for it). A
// voucher equal to the one kept is a harmless repeat (nil); anything else not newer is ErrStale, as is
// a total below the kept one — a *StaleVoucherError, which carries the kept voucher for a payer that
// lost it in a crash (see Payer.CatchUp) — or below what the chain has paid. It also refuses
// ErrWrongChannel, ErrBadSignature, and ErrInsufficientDeposit for a total above the deposit as last
// known (Refresh, then try again, if the payer may have topped up).
func (p *Payee) Accept(v contracts.SignedVoucher) error {
	if v.ChannelID != p.id {
		return fmt.Errorf("%w: voucher for %x, this is channel %s", ErrWrongChannel, v.ChannelID, p.addr)
	}
	if !v.Verify(p.ch.PayerKey) {
		return fmt.Errorf("%w: channel %s, voucher seqno %d, total %d", ErrBadSignature, p.addr, v.Seqno, v.Total)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.usable(); err != nil {
		return err
	}
	kept, ok := p.newest()
	if ok && v.Seqno <= kept.Seqno {
		if v == kept {
			return nil
		}
		return fmt.Errorf("%w: channel %s: seqno %d, newest kept is %d", ErrStale, p.addr, v.Seqno, kept.Seqno)
	}
	switch {
	case v.Seqno <= p.st.ClaimedSeqno:
		return fmt.Errorf("%w: channel %s: seqno %d, the chain has claimed %d", ErrStale, p.addr, v.Seqno, p.st.ClaimedSeqno)
	case v.Total < p.st.Total:
		return fmt.Errorf("channel %s: seqno %d goes back to total %d: %w", p.addr, v.Seqno, v.Total, &StaleVoucherError{Newest: kept})
	case v.Total < p.st.Claimed:
		return fmt.Errorf("%w: channel %s: total %d, the chain has paid %d", ErrStale, p.addr, v.Total, p.st.Claimed)
	case v.Total > p.st.Deposit:
		return fmt.Errorf("%w: channel %s: total %d > deposit %d", ErrInsufficientDeposit, p.addr, v.Total, p.st.Deposit)
	}
	next := p.st
	next.Seqno, next.Total, next.Signature = v.Seqno, v.Total, v.Signature[:]
	p.keep(&next)
	return nil
}

// newest is the kept voucher; p.mu held.
func (p *Payee) newest() (contracts.SignedVoucher, bool) {
	if p.st.Seqno == 0 {
		return contracts.SignedVoucher{}, false
	}
	return voucherOf(p.id, &p.st), true
}

// voucherOf is the voucher a payee's state st of channel id keeps.
func voucherOf(id [32]byte, st *state) contracts.SignedVoucher {
	sv := contracts.SignedVoucher{Voucher: contracts.Voucher{ChannelID: id, Seqno: st.Seqno, Total: st.Total}}
	copy(sv.Signature[:], st.Signature)
	return sv
}

// StaleVoucherError is Accept's answer to a voucher newer than the one kept whose total is lower: its
// payer has lost vouchers in a crash (see OpenPayer) or cheats. Newest is the voucher kept, which the
// payee answers with (a Collector in a 409) so that an honest payer catches up. It is ErrStale.
type StaleVoucherError struct {
	Newest contracts.SignedVoucher
}

func (e *StaleVoucherError) Error() string {
	return fmt.Sprintf("%v: the payee holds seqno %d, total %d", ErrStale, e.Newest.Seqno, e.Newest.Total)
}

// Unwrap makes it ErrStale.
func (e *StaleVoucherError) Unwrap() error { return ErrStale }

// Newest returns the newest voucher accepted; false before the first.
func (p *Payee) Newest() (contracts.SignedVoucher, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.newest()
}

// Claimed is what the channel has paid out, as last read from the chain, in nanoTON.
func (p *Payee) Claimed() uint64 { return p.state().Claimed }

// Unclaimed is what the newest voucher would still get from the channel: Total − Claimed.
func (p *Payee) Unclaimed() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unclaimed()
}

// unclaimed is Unclaimed; p.mu held.
func (p *Payee) unclaimed() uint64 {
	if p.st.Total <= p.st.Claimed {
		return 0
	}
	return p.st.Total - p.st.Claimed
}

// ShouldClaim reports whether there is something to claim and it amounts to at least threshold nanoTON.
func (p *Payee) ShouldClaim(threshold uint64) bool {
	u := p.Unclaimed()
	return u > 0 && u >= threshold
}

// Refresh reads the channel's state from c and records its deposit and what it has paid out.
func (p *Payee) Refresh(ctx context.Context, c chain.Chain) (*contracts.ChannelState, error) {
	return p.refresh(ctx, c, p.record)
}

// record takes what the chain says: claimed and its seqno only go up; p.mu held.
func (p *Payee) record(st *contracts.ChannelState) error {
	if p.closed {
		return p.errClosed()
	}
	next := p.st
	next.Deposit = st.Deposit
	next.Claimed = max(next.Claimed, st.Claimed)
	next.ClaimedSeqno = max(next.ClaimedSeqno, st.Seqno)
	return p.save(&next, "record chain state")
}

// Claim claims the newest voucher through the payee's wallet w, after putting it on disk (Sync), so
// that a claim is never made with a voucher a crash could take back: it sends the claim (with
// contracts.ClaimValue for the gas; what is left comes back with the payout), waits for the channel's
// transaction and the payout, reads the channel's state back and records what it has paid out. With
// nothing new to claim it sends nothing; so does a claim the chain already holds (sent before a crash).
func (p *Payee) Claim(ctx context.Context, w *chain.Wallet) error {
	if err := checkWallet(w, p.ch.Payee, "payee", p.addr); err != nil {
		return err
	}
	p.claimMu.Lock()
	defer p.claimMu.Unlock()
	if err := p.Sync(); err != nil {
		return err
	}
	p.mu.Lock()
	sv, ok := p.newest()
	todo, closed := p.unclaimed(), p.closed
	p.mu.Unlock()
	if closed {
		return p.errClosed()
	}
	if !ok || todo == 0 {
		return nil
	}

	st, err := p.refresh(ctx, w.Chain(), p.record)
	if err != nil {
		return err
	}
	switch {
	case st.Claimed >= sv.Total:
		return nil
	case st.Status == contracts.ChannelClosed:
		return fmt.Errorf("%w: %s; voucher seqno %d, total %d unclaimed", ErrChannelClosed, p.addr, sv.Seqno, sv.Total)
	case sv.Seqno <= st.Seqno:
		return fmt.Errorf("%w: channel %s has claimed seqno %d, the newest voucher is %d", ErrStale, p.addr, st.Seqno, sv.Seqno)
	case sv.Total > st.Deposit:
		return fmt.Errorf("%w: channel %s: voucher total %d > deposit %d", ErrInsufficientDeposit, p.addr, sv.Total, st.Deposit)
	}

	if _, err := send(ctx, w, p.addr, "claim", contracts.ClaimValue, contracts.ClaimBody(sv.Seqno, sv), nil); err != nil {
		return err
	}
	if p.crashed("claim sent") {
		return errSimulatedCrash
	}
	if st, err = p.refresh(ctx, w.Chain(), p.record); err != nil {
		return err
	}
	if st.Claimed < sv.Total {
		return fmt.Errorf("payments: claim of seqno %d, total %d on channel %s left claimed at %d", sv.Seqno, sv.Total, p.addr, st.Claimed)
	}
	return nil
}
