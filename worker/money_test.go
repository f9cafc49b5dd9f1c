package worker

import (
	"context"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/payments/paymentstest"
)

// stop runs w's clean stop: Run with a context already done returns at once, settling.
func stop(t *testing.T, w *Worker) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// A proxy that starts closing its channel to a worker while the worker holds
// a voucher far below its claim threshold: the worker claims it at its next
// watch, and the proxy's finish close takes back only the rest.
func TestWorkerClaimsWhenItsProxyStartsAClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := paymentstest.Open(t, 2*paymentstest.TON)
		ch.Pay(40_000_000)
		ch.Pay(25_000_000)
		w := newTestWorker(t, Config{}, WithPayments(&Payments{Wallet: ch.PayeeWallet, Channel: ch.Payee, WatchInterval: time.Minute,
			Journal: filepath.Join(t.TempDir(), "books.jsonl")}))
		t.Cleanup(func() { w.money.collect.Close() }) // stops the watch if the test fails before stop
		if _, err := payments.StartClose(ch.Ctx, ch.PayerWallet, ch.Config); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // the next watch
		synctest.Wait()
		if got := w.ClosingChannels(); ch.Payee.Claimed() != 65_000_000 || len(got) != 1 || got[0].State != "closing" || got[0].Unclaimed != 0 {
			t.Fatalf("after a watch: claimed %d, closing %+v; want 65000000 claimed and the channel listed as closing", ch.Payee.Claimed(), got)
		}
		if got := ch.State(); got.Claimed != 65_000_000 {
			t.Fatalf("chain: %+v", got)
		}
		ch.FinishClose(ch.Ledger(), 65_000_000)
		stop(t, w)
	})
}

// While its channel stays open the worker claims nothing below its
// threshold, however often it looks; its clean stop claims everything.
func TestWorkerWatchLeavesAnOpenChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := paymentstest.Open(t, 2*paymentstest.TON)
		ch.Pay(40_000_000)
		w := newTestWorker(t, Config{}, WithPayments(&Payments{Wallet: ch.PayeeWallet, Channel: ch.Payee, WatchInterval: time.Minute,
			Journal: filepath.Join(t.TempDir(), "books.jsonl")}))
		t.Cleanup(func() { w.money.collect.Close() })
		txs := ch.Chain.Status().Transactions
		time.Sleep(time.Hour) // sixty watches
		synctest.Wait()
		if ch.Chain.Status().Transactions != txs || ch.Payee.Claimed() != 0 || len(w.ClosingChannels()) != 0 {
			t.Fatalf("an open channel: %d transactions, %d claimed", ch.Chain.Status().Transactions-txs, ch.Payee.Claimed())
		}
		stop(t, w)
		if got := ch.State().Claimed; got != 40_000_000 {
			t.Fatalf("after a clean stop the chain has paid %d, want 40000000", got)
		}
	})
}
