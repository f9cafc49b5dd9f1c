package payments

import (
	"errors"
	"math/big"
	"testing"

	"github.com/xssnick/tonutils-go/tlb"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
)

// N payments cost one open and one claim on chain, whatever N is; the payee gets the total less its
// claim's fees, and a second claim with nothing new sends nothing.
func TestPayManyClaimOnce(t *testing.T) {
	const n = 1000
	w := newWorld(t)
	txs0 := w.txs()
	p, q := w.open(1 * ton)
	openTxs := w.txs() - txs0
	if st := w.state(); st.Status != contracts.ChannelOpen || st.Deposit != 1*ton || p.Deposit() != 1*ton || q.Deposit() != 1*ton {
		t.Fatalf("after open: %+v; payer knows %d, payee %d", st, p.Deposit(), q.Deposit())
	}

	var want uint64
	txs1 := w.txs()
	for i := range uint64(n) {
		amount := 100_000 + i*100
		v, err := p.Pay(amount)
		if err != nil {
			t.Fatal(err)
		}
		want += amount
		if v.Seqno != i+1 || v.Total != want {
			t.Fatalf("voucher %d: seqno %d, total %d, want total %d", i, v.Seqno, v.Total, want)
		}
		if err := q.Accept(v); err != nil {
			t.Fatal(err)
		}
	}
	if w.txs() != txs1 {
		t.Fatalf("paying touched the chain: %d transactions", w.txs()-txs1)
	}
	if p.Total() != want || p.Seqno() != n || q.Total() != want || q.Unclaimed() != want || q.Claimed() != 0 {
		t.Fatalf("payer %d/%d, payee total %d unclaimed %d claimed %d; want %d", p.Seqno(), p.Total(), q.Total(), q.Unclaimed(), q.Claimed(), want)
	}
	if !q.ShouldClaim(want) || q.ShouldClaim(want+1) {
		t.Fatal("ShouldClaim does not compare the unclaimed amount with the threshold")
	}

	payee0, channel0, fees0 := w.balance(w.payeeW.Address()), w.balance(w.addr()), w.fees()
	if err := q.Claim(w.ctx, w.payeeW); err != nil {
		t.Fatal(err)
	}
	claimTxs, claimFees := w.txs()-txs1, w.fees()-fees0
	st := w.state()
	if st.Claimed != want || st.Seqno != n || q.Claimed() != want || q.Unclaimed() != 0 || q.ShouldClaim(0) {
		t.Fatalf("after claim: chain %+v; payee claimed %d, unclaimed %d", st, q.Claimed(), q.Unclaimed())
	}
	// The deposit paid exactly the total; the payee's wallet got it less every fee of the claim.
	if got := channel0 - w.balance(w.addr()); got != want {
		t.Fatalf("channel paid %d, want %d", got, want)
	}
	if got := w.balance(w.payeeW.Address()) - payee0; got != want-claimFees {
		t.Fatalf("payee gained %d, want %d - fees %d", got, want, claimFees)
	}
	if claimFees == 0 || claimFees > contracts.ClaimValue {
		t.Fatalf("claim fees %d", claimFees)
	}
	chTxs, err := w.c.Transactions(w.ctx, w.addr(), 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	wTxs, err := w.c.Transactions(w.ctx, w.payeeW.Address(), 0, 2) // the payout landing, the claim leaving
	if err != nil {
		t.Fatal(err)
	}
	send, channel, land := wTxs[1], chTxs[0], wTxs[0]
	if sum := send.Fees + send.Out[0].FwdFee + channel.Fees + channel.Out[0].FwdFee + land.Fees; sum != claimFees {
		t.Fatalf("claim fees %d != the sum of its transactions' %d", claimFees, sum)
	}
	t.Logf("%d payments, %d nanoTON in all: open %d transactions, payments 0, claim %d transactions", n, want, openTxs, claimTxs)
	t.Logf("claim: %d gas in the channel; fees %d nanoTON (%.6f TON) = wallet %d + forward %d + channel %d + forward payout %d + payout landing %d",
		gasUsed(t, channel), claimFees, float64(claimFees)/ton, send.Fees, send.Out[0].FwdFee, channel.Fees, channel.Out[0].FwdFee, land.Fees)

	// Claiming again with nothing new sends nothing and pays nothing.
	txs2, payee1 := w.txs(), w.balance(w.payeeW.Address())
	if err := q.Claim(w.ctx, w.payeeW); err != nil {
		t.Fatal(err)
	}
	if w.txs() != txs2 || w.balance(w.payeeW.Address()) != payee1 || w.state().Claimed != want {
		t.Fatalf("second claim: %d transactions, payee balance %d -> %d", w.txs()-txs2, payee1, w.balance(w.payeeW.Address()))
	}
	w.conserved()
}

// gasUsed is the gas of tx's compute phase.
func gasUsed(t *testing.T, tx *chain.Transaction) uint64 {
	t.Helper()
	var raw tlb.Transaction
	if err := tlb.Parse(&raw, tx.Cell); err != nil {
		t.Fatal(err)
	}
	d, ok := raw.Description.(tlb.TransactionDescriptionOrdinary)
	if !ok {
		t.Fatalf("transaction description %T", raw.Description)
	}
	vm, ok := d.ComputePhase.Phase.(tlb.ComputePhaseVM)
	if !ok {
		t.Fatalf("compute phase %T", d.ComputePhase.Phase)
	}
	return new(big.Int).Set(vm.Details.GasUsed).Uint64()
}

// A payer and a payee that restart in the middle of a session carry on where they were: the payer's
// seqno and total go on, the payee keeps its newest voucher and still claims it.
func TestRestartMidSession(t *testing.T) {
	w := newWorld(t)
	p, q := w.open(1 * ton)
	for range 5 {
		v, err := p.Pay(10_000_000)
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Accept(v); err != nil {
			t.Fatal(err)
		}
	}
	last, err := p.Last()
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	q.Close()

	p, q = w.payer(), w.payee()
	if p.Seqno() != 5 || p.Total() != 50_000_000 || p.Deposit() != 1*ton {
		t.Fatalf("payer reopened at seqno %d, total %d, deposit %d", p.Seqno(), p.Total(), p.Deposit())
	}
	if again, err := p.Last(); err != nil || again != last {
		t.Fatalf("Last after restart: %+v, %v; want %+v", again, err, last)
	}
	if newest, ok := q.Newest(); !ok || newest != last {
		t.Fatalf("payee reopened with %+v, %v; want %+v", newest, ok, last)
	}
	if err := q.Accept(last); err != nil { // the payer re-sends it after its restart: a harmless repeat
		t.Fatal(err)
	}
	v, err := p.Pay(5_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if v.Seqno != 6 || v.Total != 55_000_000 {
		t.Fatalf("first voucher after restart: seqno %d, total %d", v.Seqno, v.Total)
	}
	if err := q.Accept(v); err != nil {
		t.Fatal(err)
	}
	q.Close()
	q = w.payee()
	if err := q.Claim(w.ctx, w.payeeW); err != nil {
		t.Fatal(err)
	}
	if st := w.state(); st.Claimed != 55_000_000 || st.Seqno != 6 || q.Claimed() != 55_000_000 {
		t.Fatalf("claim after restart: %+v, payee claimed %d", st, q.Claimed())
	}
	w.conserved()
}

// A payee that dies after its claim reached the chain, before it recorded it, does not claim again
// after a restart: it reads what the chain paid and sends nothing.
func TestClaimCrashBeforeRecord(t *testing.T) {
	w := newWorld(t)
	p, q := w.open(1 * ton)
	v, _ := p.Pay(300_000_000)
	if err := q.Accept(v); err != nil {
		t.Fatal(err)
	}
	q.crashed = func(point string) bool { return point == "claim sent" }
	if err := q.Claim(w.ctx, w.payeeW); !errors.Is(err, errSimulatedCrash) {
		t.Fatalf("claim: %v", err)
	}
	kill(&q.end)

	q = w.payee()
	if q.Claimed() != 0 || q.Unclaimed() != 300_000_000 {
		t.Fatalf("reopened payee: claimed %d, unclaimed %d", q.Claimed(), q.Unclaimed())
	}
	txs, payee := w.txs(), w.balance(w.payeeW.Address())
	if err := q.Claim(w.ctx, w.payeeW); err != nil {
		t.Fatal(err)
	}
	if w.txs() != txs || w.balance(w.payeeW.Address()) != payee {
		t.Fatalf("claim after the crash sent %d transactions", w.txs()-txs)
	}
	if q.Claimed() != 300_000_000 || q.Unclaimed() != 0 || w.state().Claimed != 300_000_000 {
		t.Fatalf("after: payee claimed %d, chain %+v", q.Claimed(), w.state())
	}
}

// A payer whose state was lost (a fresh directory) finds out from the chain before it signs anything.
func TestPayerStateBehindChain(t *testing.T) {
	w := newWorld(t)
	p, q := w.open(1 * ton)
	v, _ := p.Pay(1_000_000)
	q.Accept(v)
	if err := q.Claim(w.ctx, w.payeeW); err != nil {
		t.Fatal(err)
	}
	p.Close()
	w.payerDir = t.TempDir()
	p = w.payer()
	if _, err := p.Refresh(w.ctx, w.c); !errors.Is(err, ErrStateBehind) {
		t.Fatalf("refresh of a lost state: %v", err)
	}
	if _, err := p.Pay(1); !errors.Is(err, ErrInsufficientDeposit) {
		t.Fatalf("pay from a lost state: %v", err)
	}
}

// Over a whole session — open, pay, claim past a threshold, top up, pay, close, a claim during the
// close delay, finish — every nanoTON is accounted for by the chain's own books: what the payer spent is
// what the payee received, plus fees, plus what is still locked; and the deposit is what was claimed
// plus what went back to the payer.
func TestSessionConservation(t *testing.T) {
	const threshold = 100_000_000
	w := newWorld(t)
	payer0, payee0, fees0 := w.balance(w.payerW.Address()), w.balance(w.payeeW.Address()), w.fees()
	check := func(when string) {
		t.Helper()
		w.conserved()
		spent := payer0 - w.balance(w.payerW.Address())
		received := w.balance(w.payeeW.Address()) - payee0
		locked, fees := w.balance(w.addr()), w.fees()-fees0
		if spent != received+fees+locked {
			t.Fatalf("%s: payer spent %d != payee received %d + fees %d + locked %d", when, spent, received, fees, locked)
		}
		if st := w.state(); st.Status != contracts.ChannelClosed && locked < st.Locked() {
			t.Fatalf("%s: channel holds %d < deposit - claimed = %d", when, locked, st.Locked())
		}
	}

	p, q := w.open(1 * ton)
	claims := 0
	pay := func(k int, amount uint64) {
		t.Helper()
		for range k {
			v, err := p.Pay(amount)
			if err != nil {
				t.Fatal(err)
			}
			if err := q.Accept(v); err != nil {
				t.Fatal(err)
			}
			if q.ShouldClaim(threshold) {
				if err := q.Claim(w.ctx, w.payeeW); err != nil {
					t.Fatal(err)
				}
				claims++
			}
		}
	}
	pay(30, 7_000_000) // 210 000 000: claims at 105 and 210
	check("after the first payments")
	if _, err := p.Pay(1 * ton); !errors.Is(err, ErrInsufficientDeposit) {
		t.Fatalf("pay past the deposit: %v", err)
	}
	st, err := TopUp(w.ctx, w.payerW, w.cfg, 1*ton)
	if err != nil {
		t.Fatal(err)
	}
	if st.Deposit != 2*ton {
		t.Fatalf("deposit after top-up %d", st.Deposit)
	}
	if _, err := p.Refresh(w.ctx, w.c); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Refresh(w.ctx, w.c); err != nil {
		t.Fatal(err)
	}
	pay(1, 1*ton)
	pay(10, 3_000_000)
	check("after the top-up")

	st, err = StartClose(w.ctx, w.payerW, w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != contracts.ChannelClosing {
		t.Fatalf("after start close: %v", st.Status)
	}
	w.clock.advance(closeDelay / 2)
	if err := q.Claim(w.ctx, w.payeeW); err != nil { // during the delay, with the newest voucher
		t.Fatal(err)
	}
	claims++
	if _, err := FinishClose(w.ctx, w.payerW, w.cfg); !errors.Is(err, ErrTooEarly) {
		t.Fatalf("finish close before the delay: %v", err)
	}
	w.clock.advance(closeDelay / 2)
	final, err := FinishClose(w.ctx, w.payerW, w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	check("after the close")

	total := p.Total()
	returned := final.Deposit - final.Claimed
	if final.Status != contracts.ChannelClosed || final.Claimed != total || q.Claimed() != total || w.balance(w.addr()) != 0 {
		t.Fatalf("final %+v; payer total %d, payee claimed %d, channel balance %d", final, total, q.Claimed(), w.balance(w.addr()))
	}
	if final.Deposit != total+returned {
		t.Fatalf("deposit %d != claimed %d + returned %d", final.Deposit, total, returned)
	}
	t.Logf("session: %d vouchers, %d claims, total %d, returned %d, all fees %d", p.Seqno(), claims, total, returned, w.fees()-fees0)
}

// A payer whose payee has gone away closes the channel and, after the delay, gets back everything
// that was not claimed. The vouchers the payee never claimed are then worth nothing.
func TestCloseAfterPayeeGone(t *testing.T) {
	w := newWorld(t)
	p, q := w.open(2 * ton)
	for range 3 {
		v, _ := p.Pay(100_000_000)
		q.Accept(v)
	}
	if err := q.Claim(w.ctx, w.payeeW); err != nil {
		t.Fatal(err)
	}
	for range 4 { // the payee takes these vouchers and disappears
		v, _ := p.Pay(50_000_000)
		q.Accept(v)
	}

	if _, err := FinishClose(w.ctx, w.payerW, w.cfg); err == nil || errors.Is(err, ErrRefused) {
		t.Fatalf("finish close before start close: %v", err)
	}
	if _, err := StartClose(w.ctx, w.payerW, w.cfg); err != nil {
		t.Fatal(err)
	}
	w.clock.advance(closeDelay - 1e9)
	txs := w.txs()
	if _, err := FinishClose(w.ctx, w.payerW, w.cfg); !errors.Is(err, ErrTooEarly) {
		t.Fatalf("finish close a second early: %v", err)
	}
	if w.txs() != txs {
		t.Fatal("a finish close too early was sent")
	}
	w.clock.advance(1e9)
	payer0, channel := w.balance(w.payerW.Address()), w.balance(w.addr())
	st, err := FinishClose(w.ctx, w.payerW, w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != contracts.ChannelClosed || st.Claimed != 300_000_000 {
		t.Fatalf("after finish close: %+v", st)
	}
	// The payer got back everything the channel held — more than the unspent deposit, since the
	// top-up reserve and the close values come back too — less the fees of its finish close.
	gain := w.balance(w.payerW.Address()) - payer0
	if unspent := uint64(2*ton - 300_000_000); gain < unspent {
		t.Fatalf("payer got back %d, less than the unspent deposit %d", gain, unspent)
	}
	if gain > channel+CloseValue {
		t.Fatalf("payer got back %d, more than the channel held (%d) and the close value", gain, channel)
	}
	if w.balance(w.addr()) != 0 {
		t.Fatalf("closed channel holds %d", w.balance(w.addr()))
	}

	// The payee comes back too late: its claim is refused before it costs anything.
	txs = w.txs()
	if err := q.Claim(w.ctx, w.payeeW); !errors.Is(err, ErrChannelClosed) {
		t.Fatalf("claim after close: %v", err)
	}
	if w.txs() != txs {
		t.Fatal("a claim on a closed channel was sent")
	}
	if _, err := FinishClose(w.ctx, w.payerW, w.cfg); !errors.Is(err, ErrChannelClosed) {
		t.Fatalf("second finish close: %v", err)
	}
	w.conserved()
}

// Open on a channel that exists already sends nothing; the channel itself refuses what the helpers
// cannot check first, with the sentinel of its exit code.
func TestOpenTwiceAndRefusals(t *testing.T) {
	w := newWorld(t)
	p, q := w.open(1 * ton)
	txs := w.txs()
	addr, err := Open(w.ctx, w.payerW, w.cfg, 1*ton)
	if !errors.Is(err, ErrAlreadyOpen) || !addr.Equals(w.addr()) || w.txs() != txs {
		t.Fatalf("second open: %v, %v, %d transactions", addr, err, w.txs()-txs)
	}
	if _, err := Open(w.ctx, w.payeeW, w.cfg, 1*ton); err == nil {
		t.Fatal("open from the payee's wallet")
	}
	// A voucher above the deposit (the payer and payee were told a larger one): the contract refuses
	// it, and Claim, which reads the deposit first, does not even send it.
	q.SetDeposit(5 * ton)
	p.SetDeposit(5 * ton)
	v, _ := p.Pay(2 * ton)
	if err := q.Accept(v); err != nil {
		t.Fatal(err)
	}
	_, err = send(w.ctx, w.payeeW, w.addr(), "claim", contracts.ClaimValue, contracts.ClaimBody(1, v), nil)
	if !errors.Is(err, ErrRefused) || !errors.Is(err, ErrInsufficientDeposit) {
		t.Fatalf("claim above the deposit: %v", err)
	}
	if err := q.Claim(w.ctx, w.payeeW); !errors.Is(err, ErrInsufficientDeposit) {
		t.Fatalf("Claim above the deposit: %v", err)
	}
	w.conserved()
}
