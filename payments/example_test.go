package payments_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/chain/local"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/payments"
)

// A client opens a channel to a proxy, pays for three requests with vouchers, and the proxy claims
// them all with one transaction.
func Example() {
	dir, _ := os.MkdirTemp("", "payments-example")
	defer os.RemoveAll(dir)
	c, err := local.Open(filepath.Join(dir, "chain"), &local.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()
	key := func(b byte) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, 32)) }
	client, _ := chain.NewWallet(c, key(1))
	proxy, _ := chain.NewWallet(c, key(2))
	c.Fund(ctx, client.Address(), 5_000_000_000)
	c.Fund(ctx, proxy.Address(), 1_000_000_000)
	voucherKey := key(3) // not the wallet's key
	ch := contracts.ChannelConfig{
		Payer: client.Address(), Payee: proxy.Address(),
		PayerKey: voucherKey.Public().(ed25519.PublicKey), PayeeKey: key(4).Public().(ed25519.PublicKey),
		CloseDelay: time.Hour,
	}

	// The client opens the channel; each end opens its state and learns the deposit from the chain.
	if _, err := payments.Open(ctx, client, ch, 1_000_000_000); err != nil {
		panic(err)
	}
	payer, _ := payments.OpenPayer(filepath.Join(dir, "client"), ch, voucherKey)
	defer payer.Close()
	payee, _ := payments.OpenPayee(filepath.Join(dir, "proxy"), ch)
	defer payee.Close()
	payer.Refresh(ctx, c)
	payee.Refresh(ctx, c)

	for _, cost := range []uint64{1_200_000, 800_000, 1_000_000} {
		v, err := payer.Pay(cost) // after checking the request's usage receipt
		if err != nil {
			panic(err)
		}
		if err := payee.Accept(v); err != nil { // v travels to the proxy
			panic(err)
		}
	}
	if payee.ShouldClaim(2_000_000) {
		if err := payee.Claim(ctx, proxy); err != nil {
			panic(err)
		}
	}
	st, _ := payments.State(ctx, c, payee.Address())
	fmt.Println(payer.Seqno(), payer.Total(), payee.Claimed(), st.Claimed, st.Locked())
	// Output: 3 3000000 3000000 3000000 997000000
}
