package payments_test

import (
	"os"
	"testing"

	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/payments/paymentstest"
)

// TestUsable: a payer pays through its open channel; once it starts
// closing it, through a new one with the next nonce; and it never reuses
// an address it has a store for, even where nothing is deployed.
func TestUsable(t *testing.T) {
	ch := paymentstest.Open(t, 2*paymentstest.TON)
	dir := t.TempDir()
	cfg, st, err := payments.Usable(ch.Ctx, ch.Chain, ch.Config, dir)
	if err != nil || cfg.Nonce != 1 || st == nil {
		t.Fatalf("open channel: nonce %d, state %v, %v; want nonce 1 and its state", cfg.Nonce, st, err)
	}
	if _, err := payments.StartClose(ch.Ctx, ch.PayerWallet, ch.Config); err != nil {
		t.Fatal(err)
	}
	cfg, st, err = payments.Usable(ch.Ctx, ch.Chain, ch.Config, dir)
	if err != nil || cfg.Nonce != 2 || st != nil {
		t.Fatalf("closing channel: nonce %d, state %v, %v; want nonce 2, not deployed", cfg.Nonce, st, err)
	}
	addr, err := cfg.Address()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(payments.ChannelDir(dir, addr), 0o700); err != nil {
		t.Fatal(err)
	}
	if cfg, _, err = payments.Usable(ch.Ctx, ch.Chain, ch.Config, dir); err != nil || cfg.Nonce != 3 {
		t.Fatalf("a used address: nonce %d, %v; want 3", cfg.Nonce, err)
	}
}
