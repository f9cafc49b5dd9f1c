package contracts

import (
	"bytes"
	"math/big"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

const (
	ton        = uint64(1_000_000_000)
	closeDelay = time.Hour
)

// channelFixture is a deployed channel with a deposit, its parties and a ledger.
type channelFixture struct {
	*ledger
	payer, payee, stranger party
	cfg                    ChannelConfig
	addr                   *address.Address
	id                     [32]byte
}

func newChannel(t *testing.T, deposit uint64) *channelFixture {
	t.Helper()
	f := &channelFixture{
		ledger:   newLedger(t),
		payer:    newParty("payer"),
		payee:    newParty("payee"),
		stranger: newParty("stranger"),
	}
	f.cfg = ChannelConfig{
		Payer: f.payer.addr, Payee: f.payee.addr,
		PayerKey: f.payer.pub(), PayeeKey: f.payee.pub(),
		Nonce: 1, CloseDelay: closeDelay,
	}
	var err error
	if f.addr, err = f.cfg.Address(); err != nil {
		t.Fatal(err)
	}
	if f.id, err = f.cfg.ID(); err != nil {
		t.Fatal(err)
	}
	si, err := f.cfg.StateInit()
	if err != nil {
		t.Fatal(err)
	}
	r := f.send(f.payer.addr, f.addr, deposit+TopUpReserve, TopUpBody(1, deposit), si)
	mustExit(t, "deploy", r, 0)
	return f
}

func (f *channelFixture) state() *ChannelState {
	f.t.Helper()
	st, err := ParseChannelState(f.get(f.addr, GetChannelState))
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

func (f *channelFixture) voucher(seqno, total uint64) SignedVoucher {
	return Voucher{ChannelID: f.id, Seqno: seqno, Total: total}.Sign(f.payer.key)
}

func (f *channelFixture) claim(sv SignedVoucher) *txResult {
	return f.send(f.payee.addr, f.addr, ClaimValue, ClaimBody(7, sv), nil)
}

func mustExit(t testing.TB, what string, r *txResult, want int64) {
	t.Helper()
	if r.exit != want {
		t.Fatalf("%s: exit code %d, want %d", what, r.exit, want)
	}
	if want == 0 && (r.aborted || r.action != 0) {
		t.Fatalf("%s: aborted %v, action result %d", what, r.aborted, r.action)
	}
}

// mustRefuse checks that a message was refused with code want, changed nothing in the
// channel's state, and gave its sender back no more than it sent.
func (f *channelFixture) mustRefuse(what string, from party, value uint64, body *cell.Cell, want int64) {
	f.t.Helper()
	before := f.data(f.addr)
	balance := f.balance(f.addr)
	r := f.send(from.addr, f.addr, value, body, nil)
	if r.exit != want || !r.aborted {
		f.t.Fatalf("%s: exit code %d (aborted %v), want refusal with %d", what, r.exit, r.aborted, want)
	}
	if !bytes.Equal(f.data(f.addr).Hash(), before.Hash()) {
		f.t.Fatalf("%s: refused message changed the channel's data", what)
	}
	if got := r.outTo(from.addr); got >= value {
		f.t.Fatalf("%s: sender got %d back for %d sent", what, got, value)
	}
	if f.balance(f.addr) > balance+value {
		f.t.Fatalf("%s: channel balance grew by more than the message", what)
	}
	if f.balance(f.addr)+r.storage.Uint64() < balance {
		f.t.Fatalf("%s: refused message took %d from the channel beyond storage fees", what, balance-f.balance(f.addr))
	}
}

func TestChannelDeployAndTopUp(t *testing.T) {
	f := newChannel(t, 2*ton)
	st := f.state()
	if st.Status != ChannelOpen || st.Deposit != 2*ton || st.Claimed != 0 || st.Seqno != 0 || st.Nonce != 1 || st.CloseDelay != closeDelay {
		t.Fatalf("state after deploy: %+v", st)
	}
	if !st.Payer.Equals(f.payer.addr) || !st.Payee.Equals(f.payee.addr) ||
		!bytes.Equal(st.PayerKey, f.payer.pub()) || !bytes.Equal(st.PayeeKey, f.payee.pub()) {
		t.Fatalf("parties after deploy: %+v", st)
	}
	if f.balance(f.addr) < st.Locked() {
		t.Fatalf("balance %d below locked %d", f.balance(f.addr), st.Locked())
	}

	r := f.send(f.payer.addr, f.addr, ton+TopUpReserve, TopUpBody(2, ton), nil)
	mustExit(t, "top-up", r, 0)
	if got := f.state().Deposit; got != 3*ton {
		t.Fatalf("deposit after top-up = %d, want %d", got, 3*ton)
	}

	f.mustRefuse("top-up from the payee", f.payee, ton+TopUpReserve, TopUpBody(3, ton), ExitNotPayer)
	f.mustRefuse("top-up from a stranger", f.stranger, ton+TopUpReserve, TopUpBody(3, ton), ExitNotPayer)
	f.mustRefuse("top-up below amount + reserve", f.payer, ton+TopUpReserve-1, TopUpBody(3, ton), ExitLowValue)
	f.mustRefuse("unknown opcode", f.payer, ton, cell.BeginCell().MustStoreUInt(0xdeadbeef, 32).MustStoreUInt(0, 64).EndCell(), ExitUnknownOp)
	f.mustRefuse("empty body", f.payer, ton, cell.BeginCell().EndCell(), ExitUnknownOp)

	// A top-up may carry more than amount + reserve; the rest is reserve, not deposit.
	r = f.send(f.payer.addr, f.addr, ton+TopUpReserve+ton, TopUpBody(4, ton), nil)
	mustExit(t, "generous top-up", r, 0)
	if st := f.state(); st.Deposit != 4*ton || f.balance(f.addr) < st.Locked()+ton {
		t.Fatalf("after generous top-up: deposit %d, balance %d", st.Deposit, f.balance(f.addr))
	}
}

func TestChannelClaim(t *testing.T) {
	f := newChannel(t, 10*ton)

	r := f.claim(f.voucher(1, 3*ton))
	mustExit(t, "claim 1", r, 0)
	if got := r.outTo(f.payee.addr); got <= 3*ton || got > 3*ton+ClaimValue {
		t.Fatalf("claim 1 paid the payee %d, want 3 TON plus the rest of the claim's value", got)
	}
	if len(r.out) != 1 {
		t.Fatalf("claim 1 sent %d messages", len(r.out))
	}
	if op := r.out[0].Body.MustBeginParse().MustLoadUInt(32); op != uint64(OpPayout) {
		t.Fatalf("payout opcode %#x", op)
	}

	// Seqnos may skip; the payout is the difference of totals.
	r = f.claim(f.voucher(5, 4*ton+123))
	mustExit(t, "claim 5", r, 0)
	if got := r.outTo(f.payee.addr); got <= ton+123 || got > ton+123+ClaimValue {
		t.Fatalf("claim 5 paid %d", got)
	}
	if st := f.state(); st.Claimed != 4*ton+123 || st.Seqno != 5 || st.Deposit != 10*ton {
		t.Fatalf("after claims: %+v", st)
	}

	// A higher seqno with the same total pays nothing but is accepted.
	r = f.claim(f.voucher(6, 4*ton+123))
	mustExit(t, "claim with the same total", r, 0)
	if got := r.outTo(f.payee.addr); got >= ClaimValue {
		t.Fatalf("zero-payout claim paid %d", got)
	}
}

func TestChannelClaimRefusals(t *testing.T) {
	f := newChannel(t, 10*ton)
	v1, v2 := f.voucher(1, ton), f.voucher(2, 2*ton)
	mustExit(t, "claim 1", f.claim(v1), 0)
	mustExit(t, "claim 2", f.claim(v2), 0)

	body := func(sv SignedVoucher) *cell.Cell { return ClaimBody(9, sv) }

	f.mustRefuse("the same voucher twice", f.payee, ClaimValue, body(v2), ExitStaleSeqno)
	f.mustRefuse("an old voucher", f.payee, ClaimValue, body(v1), ExitStaleSeqno)
	f.mustRefuse("an old voucher with a higher total", f.payee, ClaimValue, body(f.voucher(2, 5*ton)), ExitStaleSeqno)

	forged := Voucher{ChannelID: f.id, Seqno: 3, Total: 9 * ton}.Sign(f.payee.key)
	f.mustRefuse("a voucher signed by the payee", f.payee, ClaimValue, body(forged), ExitBadSignature)
	tampered := f.voucher(3, 3*ton)
	tampered.Total = 9 * ton
	f.mustRefuse("a voucher with its total changed", f.payee, ClaimValue, body(tampered), ExitBadSignature)
	zeroSig := f.voucher(3, 3*ton)
	zeroSig.Signature = [64]byte{}
	f.mustRefuse("a voucher with no signature", f.payee, ClaimValue, body(zeroSig), ExitBadSignature)

	other := f.cfg
	other.Nonce = 2
	otherID, err := other.ID()
	if err != nil {
		t.Fatal(err)
	}
	wrong := Voucher{ChannelID: otherID, Seqno: 3, Total: 3 * ton}.Sign(f.payer.key)
	f.mustRefuse("a voucher for another channel", f.payee, ClaimValue, body(wrong), ExitWrongChannel)

	f.mustRefuse("a total below what was claimed", f.payee, ClaimValue, body(f.voucher(3, 2*ton-1)), ExitTotalBelowClaimed)
	f.mustRefuse("a total above the deposit", f.payee, ClaimValue, body(f.voucher(3, 10*ton+1)), ExitTotalAboveDeposit)
	f.mustRefuse("a claim from the payer", f.payer, ClaimValue, body(f.voucher(3, 3*ton)), ExitNotPayee)
	f.mustRefuse("a claim from a stranger", f.stranger, ClaimValue, body(f.voucher(3, 3*ton)), ExitNotPayee)

	// A voucher cell with another tag, even if signed by the payer, is not a voucher.
	v := Voucher{ChannelID: f.id, Seqno: 3, Total: 3 * ton}
	bad := cell.BeginCell().MustStoreUInt(0x12345678, 32).MustStoreSlice(v.ChannelID[:], 256).
		MustStoreUInt(v.Seqno, 64).MustStoreCoins(v.Total).EndCell()
	badBody := header(OpClaim, 9).MustStoreSlice(bad.Sign(f.payer.key), 512).MustStoreRef(bad).EndCell()
	f.mustRefuse("a cell with another tag", f.payee, ClaimValue, badBody, ExitBadVoucherTag)

	f.mustRefuse("a truncated claim", f.payee, ClaimValue, header(OpClaim, 9).MustStoreUInt(0, 100).EndCell(), 9)

	if st := f.state(); st.Claimed != 2*ton || st.Seqno != 2 {
		t.Fatalf("after refusals: %+v", st)
	}

	// The newest voucher still works after all that.
	mustExit(t, "claim 3", f.claim(f.voucher(3, 10*ton)), 0)
	if st := f.state(); st.Claimed != 10*ton || st.Locked() != 0 {
		t.Fatalf("after claiming everything: %+v", st)
	}
}

func TestChannelClose(t *testing.T) {
	f := newChannel(t, 5*ton)
	mustExit(t, "claim 1", f.claim(f.voucher(1, ton)), 0)

	f.mustRefuse("finish before start", f.payer, ton/10, FinishCloseBody(1), ExitNotClosing)
	f.mustRefuse("start close by the payee", f.payee, ton/10, StartCloseBody(1), ExitNotPayer)
	f.mustRefuse("start close by a stranger", f.stranger, ton/10, StartCloseBody(1), ExitNotPayer)

	start := f.now
	mustExit(t, "start close", f.send(f.payer.addr, f.addr, ton/10, StartCloseBody(2), nil), 0)
	st := f.state()
	if st.Status != ChannelClosing || st.ClosingSince.Unix() != int64(start) || !st.ClosableAt().Equal(time.Unix(int64(start), 0).Add(closeDelay)) {
		t.Fatalf("after start close: %+v", st)
	}
	f.mustRefuse("start close twice", f.payer, ton/10, StartCloseBody(3), ExitNotOpen)
	f.mustRefuse("top-up while closing", f.payer, ton+TopUpReserve, TopUpBody(3, ton), ExitNotOpen)

	// The payee can still claim during the delay.
	f.now += uint32(closeDelay/time.Second) - 1
	mustExit(t, "claim while closing", f.claim(f.voucher(2, 3*ton)), 0)
	f.mustRefuse("finish one second early", f.payer, ton/10, FinishCloseBody(4), ExitTooEarly)
	f.mustRefuse("finish by the payee", f.payee, ton/10, FinishCloseBody(4), ExitNotPayer)

	f.now++
	before := f.balance(f.addr)
	r := f.send(f.payer.addr, f.addr, ton/10, FinishCloseBody(5), nil)
	mustExit(t, "finish close", r, 0)
	refund := r.outTo(f.payer.addr)
	if refund < 2*ton || refund > before+ton/10 {
		t.Fatalf("refund %d, want at least the 2 TON left and at most the balance %d plus the message", refund, before)
	}
	if f.balance(f.addr) != 0 {
		t.Fatalf("balance after finish close = %d", f.balance(f.addr))
	}
	if st := f.state(); st.Status != ChannelClosed || st.Claimed != 3*ton {
		t.Fatalf("after finish close: %+v", st)
	}

	// Nothing is accepted after the close, not even a voucher signed before it.
	f.mustRefuse("claim after close", f.payee, ClaimValue, ClaimBody(6, f.voucher(3, 4*ton)), ExitClosed)
	f.mustRefuse("top-up after close", f.payer, ton+TopUpReserve, TopUpBody(6, ton), ExitClosed)
	f.mustRefuse("start close after close", f.payer, ton/10, StartCloseBody(6), ExitClosed)
	f.mustRefuse("finish close after close", f.payer, ton/10, FinishCloseBody(6), ExitClosed)
}

func TestChannelGetters(t *testing.T) {
	f := newChannel(t, ton)
	id, err := ParseChannelID(f.get(f.addr, GetChannelID))
	if err != nil {
		t.Fatal(err)
	}
	if id != f.id || !bytes.Equal(id[:], f.addr.Data()) {
		t.Fatalf("get_channel_id = %x, want %x", id, f.id)
	}
	mustExit(t, "claim", f.claim(f.voucher(4, ton/2)), 0)
	fromGetter := f.state()
	fromData, err := ParseChannelData(f.data(f.addr))
	if err != nil {
		t.Fatal(err)
	}
	if fromGetter.Claimed != fromData.Claimed || fromGetter.Seqno != fromData.Seqno || fromGetter.Deposit != fromData.Deposit ||
		!fromGetter.Payee.Equals(fromData.Payee) || !bytes.Equal(fromGetter.PayeeKey, fromData.PayeeKey) {
		t.Fatalf("getter %+v and data %+v differ", fromGetter, fromData)
	}
}

// TestChannelConservation runs a channel's whole life and accounts for every nanoTON:
// what the payer and payee sent and received, the fees, and what is left in the contract.
func TestChannelConservation(t *testing.T) {
	const deposit1, deposit2 = 3 * ton, 2 * ton
	f := newChannel(t, deposit1)
	mustExit(t, "top-up", f.send(f.payer.addr, f.addr, deposit2+TopUpReserve, TopUpBody(2, deposit2), nil), 0)

	payeeFees := new(big.Int) // what the payee's own claims cost it
	claim := func(sv SignedVoucher, want int64) {
		before := f.balance(f.addr)
		r := f.claim(sv)
		mustExit(t, "claim", r, want)
		// The deposit pays exactly the payout: everything else comes out of the claim's value.
		payout := r.outTo(f.payee.addr)
		spent := new(big.Int).Sub(big.NewInt(int64(ClaimValue)), new(big.Int).SetUint64(payout))
		balanceDrop := int64(before) - int64(f.balance(f.addr)) - r.storage.Int64()
		if want == 0 {
			spent.Add(spent, big.NewInt(balanceDrop)) // the payout itself is not a cost
		}
		payeeFees.Add(payeeFees, spent)
		if want != 0 && balanceDrop > 0 {
			t.Fatalf("refused claim took %d from the channel", balanceDrop)
		}
	}

	claim(f.voucher(1, ton), 0)
	claim(f.voucher(2, 2*ton), 0)
	claim(f.voucher(2, 2*ton), ExitStaleSeqno)
	claim(f.voucher(1, ton), ExitStaleSeqno)
	claim(Voucher{ChannelID: f.id, Seqno: 3, Total: 5 * ton}.Sign(f.payee.key), ExitBadSignature)

	st := f.state()
	if st.Deposit != deposit1+deposit2 || st.Claimed != 2*ton || f.balance(f.addr) < st.Locked() {
		t.Fatalf("mid-life: %+v, balance %d", st, f.balance(f.addr))
	}

	mustExit(t, "start close", f.send(f.payer.addr, f.addr, ton/20, StartCloseBody(3), nil), 0)
	f.now += uint32(closeDelay / time.Second / 2)
	claim(f.voucher(3, 4*ton+777), 0)
	f.now += uint32(closeDelay / time.Second)
	r := f.send(f.payer.addr, f.addr, ton/20, FinishCloseBody(4), nil)
	mustExit(t, "finish close", r, 0)

	const claimed = 4*ton + 777
	paid := f.netOf(f.payee.addr)
	payer := f.netOf(f.payer.addr)
	left := new(big.Int).SetUint64(f.balance(f.addr))

	// 1. Nothing was created or destroyed: parties' nets + what is left + fees = 0.
	sum := new(big.Int).Add(paid, payer)
	sum.Add(sum, left).Add(sum, f.fees)
	if sum.Sign() != 0 {
		t.Fatalf("value not conserved: payee %v + payer %v + left %v + fees %v = %v", paid, payer, left, f.fees, sum)
	}
	// 2. The payee got exactly the newest voucher's total, less what its claims cost it.
	if want := new(big.Int).Sub(big.NewInt(int64(claimed)), payeeFees); paid.Cmp(want) != 0 {
		t.Fatalf("payee net %v, want %d - fees %v", paid, uint64(claimed), payeeFees)
	}
	// 3. The payer lost the voucher total and the rest of the fees; nothing is still locked.
	payerFees := new(big.Int).Sub(f.fees, payeeFees)
	if want := new(big.Int).Neg(new(big.Int).Add(big.NewInt(int64(claimed)), payerFees)); payer.Cmp(want) != 0 {
		t.Fatalf("payer net %v, want -(%d + fees %v)", payer, uint64(claimed), payerFees)
	}
	// 4. deposit = paid to payee + returned to payer + still locked (0 after the close).
	final := f.state()
	returned := final.Deposit - final.Claimed
	if final.Deposit != claimed+returned || final.Claimed != claimed || left.Sign() != 0 {
		t.Fatalf("deposit %d != claimed %d + returned %d; left %v", final.Deposit, final.Claimed, returned, left)
	}
	// The payer's fees are small: the reserve it paid, not the deposit.
	if payerFees.Cmp(big.NewInt(int64(2*TopUpReserve+ton/10))) > 0 {
		t.Fatalf("payer fees %v", payerFees)
	}
	t.Logf("deposit %d, paid %d, returned %d; payee fees %v, payer fees %v", final.Deposit, claimed, returned, payeeFees, payerFees)
}

func TestChannelConfigRejectsBadInput(t *testing.T) {
	payer, payee := newParty("payer"), newParty("payee")
	good := ChannelConfig{Payer: payer.addr, Payee: payee.addr, PayerKey: payer.pub(), PayeeKey: payee.pub(), CloseDelay: time.Minute}
	if _, err := good.Data(); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*ChannelConfig){
		"no payer":              func(c *ChannelConfig) { c.Payer = nil },
		"payee addr_none":       func(c *ChannelConfig) { c.Payee = address.NewAddressNone() },
		"short payer key":       func(c *ChannelConfig) { c.PayerKey = c.PayerKey[:31] },
		"no payee key":          func(c *ChannelConfig) { c.PayeeKey = nil },
		"negative delay":        func(c *ChannelConfig) { c.CloseDelay = -time.Second },
		"fractional delay":      func(c *ChannelConfig) { c.CloseDelay = 1500 * time.Millisecond },
		"delay beyond uint32 s": func(c *ChannelConfig) { c.CloseDelay = (1 << 32) * time.Second },
	} {
		c := good
		mutate(&c)
		if _, err := c.Address(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseChannelState([]any{}); err == nil {
		t.Error("ParseChannelState of an empty result")
	}
	if _, err := ParseChannelData(cell.BeginCell().EndCell()); err == nil {
		t.Error("ParseChannelData of an empty cell")
	}
}
