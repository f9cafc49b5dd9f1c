package local

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/tlb"

	"github.com/cocoon-go/cocoon/chain"
)

const ton = 1_000_000_000

// epoch is the pinned clock of the tests.
var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func testOptions(clk *clock) *Options {
	return &Options{Now: clk.now, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NoSync: true}
}

func openTest(t *testing.T, dir string, clk *clock) *Chain {
	t.Helper()
	c, err := Open(dir, testOptions(clk))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// fundedWallet returns a deployed wallet holding about amount.
func fundedWallet(t *testing.T, c chain.Chain, name string, amount uint64) *chain.Wallet {
	t.Helper()
	ctx := context.Background()
	w, err := chain.NewWallet(c, testKey(name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.(chain.Faucet).Fund(ctx, w.Address(), amount); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Send(ctx); err != nil { // an empty message deploys it
		t.Fatal(err)
	}
	return w
}

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	c := openTest(t, t.TempDir(), &clock{epoch})
	w := fundedWallet(t, c, "alice", 10*ton)
	acc, err := c.Account(ctx, w.Address())
	if err != nil {
		t.Fatal(err)
	}
	if acc.Status != tlb.AccountStatusActive {
		t.Fatalf("status %s", acc.Status)
	}
	t.Logf("balance %d, supply %+v conserved %v", acc.Balance, c.Supply(), c.Supply().Conserved())
	seq, err := w.Seqno(ctx)
	t.Log(seq, err)
}
