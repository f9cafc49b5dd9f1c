package local

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/cocoon-go/cocoon/chain"
)

// BenchmarkTransfer measures wallet-to-wallet transfers: each is two transactions (the sender's, on its
// signed external message, and the receiver's), journaled and committed before the next starts.
//
//	go test -run '^$' -bench Transfer -benchtime 2000x ./chain/local
func BenchmarkTransfer(b *testing.B) {
	for _, bc := range []struct {
		name   string
		noSync bool
		served bool
	}{{"fsync", false, false}, {"nosync", true, false}, {"served-nosync", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			lc := openTest(b, b.TempDir(), &Options{NoSync: bc.noSync})
			var c chain.Chain = lc
			if bc.served {
				srv := httptest.NewServer(Handler(lc))
				b.Cleanup(srv.Close)
				cl, err := Dial(srv.URL)
				if err != nil {
					b.Fatal(err)
				}
				c = cl
			}
			alice := fundedWallet(b, c, "alice", 1_000_000*ton)
			bob := fundedWallet(b, c, "bob", 1_000_000*ton)
			ctx := context.Background()
			start := lc.Status().Transactions
			b.ResetTimer()
			for i := range b.N {
				from, to := alice, bob
				if i%2 == 1 {
					from, to = bob, alice
				}
				if _, err := from.Send(ctx, chain.Transfer{To: to.Address(), Amount: ton}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			txs := lc.Status().Transactions - start
			b.ReportMetric(float64(txs)/b.Elapsed().Seconds(), "tx/s")
			checkConserved(b, lc)
		})
	}
}
