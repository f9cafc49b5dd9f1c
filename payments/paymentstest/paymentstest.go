// Package paymentstest opens a payment channel on a local chain with a pinned clock, for tests of the
// roles that pay and are paid through one.
package paymentstest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/chain/local"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/payments"
)

// TON is one TON in nanoTON.
const TON = 1_000_000_000

// CloseDelay is the close delay of the channel Open opens.
const CloseDelay = time.Hour

// Clock is a pinned clock that tests move forward.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Channel is a channel open on a local chain, its two wallets and its two ends.
type Channel struct {
	T           testing.TB
	Ctx         context.Context
	Chain       *local.Chain
	Clock       *Clock
	PayerWallet *chain.Wallet
	PayeeWallet *chain.Wallet
	Config      contracts.ChannelConfig
	Payer       *payments.Payer
	Payee       *payments.Payee
}

// Open opens a channel with deposit on a fresh local chain, from a payer wallet holding about
// deposit + 10 TON to a payee wallet holding about 1 TON, and both ends of it, refreshed. Everything
// is closed when the test ends.
func Open(t testing.TB, deposit uint64) *Channel {
	t.Helper()
	clk := &Clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	c, err := local.Open(t.TempDir(), &local.Options{NoSync: true, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch := &Channel{T: t, Ctx: context.Background(), Chain: c, Clock: clk}
	ch.PayerWallet = ch.wallet("payer wallet", deposit+10*TON)
	ch.PayeeWallet = ch.wallet("payee wallet", 1*TON)
	voucherKey := Key("payer voucher")
	ch.Config = contracts.ChannelConfig{
		Payer: ch.PayerWallet.Address(), Payee: ch.PayeeWallet.Address(),
		PayerKey: voucherKey.Public().(ed25519.PublicKey), PayeeKey: Key("payee id").Public().(ed25519.PublicKey),
		Nonce: 1, CloseDelay: CloseDelay,
	}
	if _, err := payments.Open(ch.Ctx, ch.PayerWallet, ch.Config, deposit); err != nil {
		t.Fatal(err)
	}
	if ch.Payer, err = payments.OpenPayer(t.TempDir(), ch.Config, voucherKey); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Payer.Close() })
	if ch.Payee, err = payments.OpenPayee(t.TempDir(), ch.Config); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Payee.Close() })
	if _, err := ch.Payer.Refresh(ch.Ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Payee.Refresh(ch.Ctx, c); err != nil {
		t.Fatal(err)
	}
	return ch
}

// Key is a test key derived from name.
func Key(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// wallet returns a deployed wallet holding about amount.
func (ch *Channel) wallet(name string, amount uint64) *chain.Wallet {
	ch.T.Helper()
	w, err := chain.NewWallet(ch.Chain, Key(name))
	if err != nil {
		ch.T.Fatal(err)
	}
	if _, err := ch.Chain.Fund(ch.Ctx, w.Address(), amount); err != nil {
		ch.T.Fatal(err)
	}
	if _, err := w.Send(ch.Ctx); err != nil { // an empty message deploys it
		ch.T.Fatal(err)
	}
	return w
}

// Pay has the payer pay amount and the payee accept the voucher.
func (ch *Channel) Pay(amount uint64) contracts.SignedVoucher {
	ch.T.Helper()
	v, err := ch.Payer.Pay(amount)
	if err != nil {
		ch.T.Fatal(err)
	}
	if err := ch.Payee.Accept(v); err != nil {
		ch.T.Fatal(err)
	}
	return v
}

// Address is the channel's address.
func (ch *Channel) Address() *address.Address { return ch.Payee.Address() }

// State reads the channel's state from the chain.
func (ch *Channel) State() *contracts.ChannelState {
	ch.T.Helper()
	st, err := payments.State(ch.Ctx, ch.Chain, ch.Address())
	if err != nil {
		ch.T.Fatal(err)
	}
	return st
}

// Balance is what the account at a holds.
func (ch *Channel) Balance(a *address.Address) uint64 {
	ch.T.Helper()
	acc, err := ch.Chain.Account(ch.Ctx, a)
	if err != nil {
		ch.T.Fatal(err)
	}
	return acc.Balance
}

// Ledger is the balances of the channel's accounts and the fees taken so far.
type Ledger struct {
	Payer, Payee, Channel, Fees uint64
}

// Ledger reads the balances of the payer's and payee's wallets and of the channel, and the fees the
// chain has taken, and fails the test if the chain does not conserve value.
func (ch *Channel) Ledger() Ledger {
	ch.T.Helper()
	s := ch.Chain.Supply()
	if !s.Conserved() {
		ch.T.Fatalf("the chain does not conserve value: %+v", s)
	}
	return Ledger{Payer: ch.Balance(ch.PayerWallet.Address()), Payee: ch.Balance(ch.PayeeWallet.Address()),
		Channel: ch.Balance(ch.Address()), Fees: s.Fees + s.FwdFees}
}

// FinishClose advances the clock past the close delay, finishes the close the payer started, and
// checks the outcome: the channel paid the payee exactly claimed in all and holds nothing, and
// value moved only between the two wallets, the channel and the fees since before, a Ledger read
// before the close. It returns the channel's final state.
func (ch *Channel) FinishClose(before Ledger, claimed uint64) *contracts.ChannelState {
	ch.T.Helper()
	ch.Clock.Advance(CloseDelay)
	final, err := payments.FinishClose(ch.Ctx, ch.PayerWallet, ch.Config)
	if err != nil {
		ch.T.Fatal(err)
	}
	after := ch.Ledger()
	if final.Status != contracts.ChannelClosed || final.Claimed != claimed || after.Channel != 0 {
		ch.T.Fatalf("after finish close: %+v, channel holds %d; want closed, %d claimed, empty", final, after.Channel, claimed)
	}
	// The payer gets back what the channel held, less its finish close's fees: never less than the
	// deposit nobody claimed, never more than the channel held.
	if gain := after.Payer - before.Payer; after.Payer < before.Payer || gain < final.Deposit-claimed || gain > before.Channel {
		ch.T.Fatalf("payer got back %d; the unclaimed deposit is %d, the channel held %d", int64(after.Payer-before.Payer), final.Deposit-claimed, before.Channel)
	}
	in := before.Payer + before.Payee + before.Channel
	out := after.Payer + after.Payee + after.Channel + (after.Fees - before.Fees)
	if in != out {
		ch.T.Fatalf("value not conserved across the close: %d before, %d after with fees", in, out)
	}
	return final
}

// Wallet returns a new deployed wallet on the channel's chain, named name (its key is Key(name)),
// holding about amount.
func (ch *Channel) Wallet(name string, amount uint64) *chain.Wallet {
	ch.T.Helper()
	return ch.wallet(name, amount)
}

// OpenOther deploys another channel on the same chain, as cfg says, with deposit, from payer (which
// must be cfg.Payer's wallet), and returns its address. Tests use it for a second channel of one
// payer, or for a third party's channel to the same payee.
func (ch *Channel) OpenOther(payer *chain.Wallet, cfg contracts.ChannelConfig, deposit uint64) *address.Address {
	ch.T.Helper()
	addr, err := payments.Open(ch.Ctx, payer, cfg, deposit)
	if err != nil {
		ch.T.Fatal(err)
	}
	return addr
}
