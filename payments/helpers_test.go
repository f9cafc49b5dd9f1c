package payments

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/chain/local"
	"github.com/cocoon-go/cocoon/contracts"
)

const ton = 1_000_000_000

// epoch is the pinned clock of the tests.
var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is a pinned clock that tests move forward.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func testAddr(name string) *address.Address {
	h := sha256.Sum256([]byte("address " + name))
	return address.NewAddress(0, 0, h[:])
}

// offChain is a channel config for tests that need no chain: made-up party addresses.
func offChain(nonce uint64) contracts.ChannelConfig {
	return contracts.ChannelConfig{
		Payer: testAddr("payer"), Payee: testAddr("payee"),
		PayerKey: testKey("payer voucher").Public().(ed25519.PublicKey),
		PayeeKey: testKey("payee id").Public().(ed25519.PublicKey),
		Nonce:    nonce, CloseDelay: time.Hour,
	}
}

// world is a local chain with a funded payer and payee and the config of a channel between them.
type world struct {
	t                  *testing.T
	ctx                context.Context
	clock              *clock
	c                  *local.Chain
	payerW, payeeW     *chain.Wallet
	voucherKey         ed25519.PrivateKey
	cfg                contracts.ChannelConfig
	payerDir, payeeDir string
}

const closeDelay = time.Hour

func newWorld(t *testing.T) *world {
	t.Helper()
	clk := &clock{t: epoch}
	c, err := local.Open(t.TempDir(), &local.Options{NoSync: true, Now: clk.now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	w := &world{t: t, ctx: context.Background(), clock: clk, c: c, voucherKey: testKey("payer voucher"),
		payerDir: t.TempDir(), payeeDir: t.TempDir()}
	w.payerW = w.wallet("payer wallet", 10*ton)
	w.payeeW = w.wallet("payee wallet", 1*ton)
	w.cfg = contracts.ChannelConfig{
		Payer: w.payerW.Address(), Payee: w.payeeW.Address(),
		PayerKey:   w.voucherKey.Public().(ed25519.PublicKey),
		PayeeKey:   testKey("payee id").Public().(ed25519.PublicKey),
		CloseDelay: closeDelay,
	}
	return w
}

// wallet returns a deployed wallet holding about amount.
func (w *world) wallet(name string, amount uint64) *chain.Wallet {
	w.t.Helper()
	wl, err := chain.NewWallet(w.c, testKey(name))
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.c.Fund(w.ctx, wl.Address(), amount); err != nil {
		w.t.Fatal(err)
	}
	if _, err := wl.Send(w.ctx); err != nil { // an empty message deploys it
		w.t.Fatal(err)
	}
	return wl
}

// open deploys the channel with deposit and returns a payer and a payee that know it.
func (w *world) open(deposit uint64) (*Payer, *Payee) {
	w.t.Helper()
	if _, err := Open(w.ctx, w.payerW, w.cfg, deposit); err != nil {
		w.t.Fatal(err)
	}
	p, q := w.payer(), w.payee()
	if _, err := p.Refresh(w.ctx, w.c); err != nil {
		w.t.Fatal(err)
	}
	if _, err := q.Refresh(w.ctx, w.c); err != nil {
		w.t.Fatal(err)
	}
	return p, q
}

func (w *world) payer() *Payer {
	w.t.Helper()
	p, err := OpenPayer(w.payerDir, w.cfg, w.voucherKey)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { p.Close() })
	return p
}

func (w *world) payee() *Payee {
	w.t.Helper()
	q, err := OpenPayee(w.payeeDir, w.cfg)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { q.Close() })
	return q
}

func (w *world) addr() *address.Address {
	a, _ := w.cfg.Address()
	return a
}

func (w *world) state() *contracts.ChannelState {
	w.t.Helper()
	st, err := State(w.ctx, w.c, w.addr())
	if err != nil {
		w.t.Fatal(err)
	}
	return st
}

func (w *world) balance(a *address.Address) uint64 {
	w.t.Helper()
	acc, err := w.c.Account(w.ctx, a)
	if err != nil {
		w.t.Fatal(err)
	}
	return acc.Balance
}

// txs is how many transactions the chain has run.
func (w *world) txs() uint64 { return w.c.Status().Transactions }

// fees is every fee the chain has taken so far: transaction fees and forwarding fees.
func (w *world) fees() uint64 {
	s := w.c.Supply()
	return s.Fees + s.FwdFees
}

func (w *world) conserved() {
	w.t.Helper()
	if s := w.c.Supply(); !s.Conserved() {
		w.t.Fatalf("value not conserved: %+v", s)
	}
}

// kill stops an end as a dead process would: what is only in its memory is lost, its lock and files
// are let go, and nothing else a clean Close does (a last flush, a checkpoint) happens.
func kill(e *end) {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.closed = true
	if e.flushing != nil {
		e.flushing.Stop()
	}
	e.store.close()
}
