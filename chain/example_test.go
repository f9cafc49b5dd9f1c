package chain_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/chain/local"
)

// A wallet funded by the local chain's faucet deploys itself and pays another wallet; Trace follows the
// transfer to the receiver's transaction.
func ExampleWallet_Send() {
	dir, _ := os.MkdirTemp("", "chain-example")
	defer os.RemoveAll(dir)
	c, err := local.Open(dir, &local.Options{
		Now:    func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) },
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	defer c.Close()
	ctx := context.Background()

	alice, _ := chain.NewWallet(c, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)))
	bob, _ := chain.NewWallet(c, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)))
	c.Fund(ctx, alice.Address(), 5_000_000_000)

	tx, err := alice.Send(ctx, chain.Transfer{To: bob.Address(), Amount: 1_000_000_000})
	if err != nil {
		panic(err)
	}
	trace, _ := chain.Trace(ctx, c, tx)
	fmt.Println(len(trace), trace[0].Address.Equals(bob.Address()), trace[0].In.Value)
	// Output: 1 true 1000000000
}
