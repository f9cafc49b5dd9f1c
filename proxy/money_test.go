package proxy

import (
	"crypto/tls"
	"encoding/hex"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/payments/paymentstest"
)

// newPaidProxy is a proxy paid through ch's channel, watching it every
// minute.
func newPaidProxy(ch *paymentstest.Channel) *Proxy {
	p, err := New(Config{}, tls.Certificate{}, nil, nil, slog.New(slog.DiscardHandler), WithPayments(&Payments{Chain: ch.Chain,
		Wallet: ch.PayeeWallet, WatchInterval: time.Minute, Clients: []*payments.Payee{ch.Payee}}))
	if err != nil {
		ch.T.Fatal(err)
	}
	ch.T.Cleanup(func() { p.Close() }) // stops the watch if a test fails before its Close
	return p
}

// A client that starts closing its channel while the proxy holds vouchers far
// below its claim threshold: the proxy claims them at its next watch, and the
// client's finish close takes back only the rest.
func TestProxyClaimsWhenAClientStartsAClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := paymentstest.Open(t, 3*paymentstest.TON)
		ch.Pay(120_000_000)
		p := newPaidProxy(ch)
		if _, err := payments.StartClose(ch.Ctx, ch.PayerWallet, ch.Config); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // the next watch
		synctest.Wait()
		if got := p.ClosingChannels(); ch.Payee.Claimed() != 120_000_000 || len(got) != 1 || got[0].Channel != ch.Address().String() || got[0].Unclaimed != 0 {
			t.Fatalf("the proxy did not claim a closing channel at its next watch: claimed %d, closing %+v", ch.Payee.Claimed(), got)
		}
		// From now on the client is refused: what it would be served on credit
		// could be taken back when the close finishes.
		if err := p.checkChannelOpen(hex.EncodeToString(ch.Config.PayerKey)); err == nil || !strings.Contains(err.Error(), "is closing") {
			t.Errorf("a client whose channel is closing: %v, want a refusal", err)
		}
		ch.FinishClose(ch.Ledger(), 120_000_000)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// While a client's channel stays open the proxy claims nothing below its
// threshold; its Close claims everything.
func TestProxyWatchLeavesAnOpenChannel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := paymentstest.Open(t, 3*paymentstest.TON)
		ch.Pay(120_000_000)
		p := newPaidProxy(ch)
		txs := ch.Chain.Status().Transactions
		time.Sleep(time.Hour) // sixty watches
		synctest.Wait()
		if ch.Chain.Status().Transactions != txs || ch.Payee.Claimed() != 0 || len(p.ClosingChannels()) != 0 {
			t.Fatalf("an open channel: %d transactions, %d claimed", ch.Chain.Status().Transactions-txs, ch.Payee.Claimed())
		}
		if err := p.checkChannelOpen(hex.EncodeToString(ch.Config.PayerKey)); err != nil {
			t.Errorf("a client whose channel is open: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if got := ch.State().Claimed; got != 120_000_000 {
			t.Fatalf("after Close the chain has paid %d, want 120000000", got)
		}
		// A second Close does nothing (it used to send on the closed wallet queue).
		txs = ch.Chain.Status().Transactions
		if err := p.Close(); err != nil || ch.Chain.Status().Transactions != txs {
			t.Fatalf("second Close: %v, %d transactions", err, ch.Chain.Status().Transactions-txs)
		}
	})
}
