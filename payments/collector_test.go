package payments_test

import (
	"encoding/hex"
	"errors"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/payments/paymentstest"
)

func newCollector(t *testing.T, ch *paymentstest.Channel, cfg payments.CollectorConfig) *payments.Collector {
	t.Helper()
	cfg.Wallet = payments.NewWallet(ch.PayeeWallet)
	cfg.Dir = t.TempDir()
	cfg.Log = slog.New(slog.DiscardHandler)
	if cfg.WatchInterval == 0 {
		cfg.WatchInterval = time.Millisecond
	}
	c, err := payments.NewCollector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Unauthenticated posts on channels that do not exist cost one chain read
// each at most, then nothing: refusals are remembered and look-ups bounded.
func TestCollectorBoundsLookups(t *testing.T) {
	ch := paymentstest.Open(t, 2*paymentstest.TON)
	c := newCollector(t, ch, payments.CollectorConfig{MaxLookups: 1})
	nowhere := address.NewAddress(0, 0, make([]byte, 32)).String()
	elsewhere := address.NewAddress(0, 0, append(make([]byte, 31), 9)).String()
	post := func(addr string) error {
		return c.Accept(ch.Ctx, payments.VoucherPost{Channel: addr, Voucher: contracts.Voucher{Seqno: 1}.Sign(paymentstest.Key("x"))})
	}
	if err := post(nowhere); !errors.Is(err, payments.ErrUnknownChannel) {
		t.Fatalf("a channel not deployed: %v", err)
	}
	if err := post(nowhere); !errors.Is(err, payments.ErrUnknownChannel) {
		t.Fatalf("again, from memory: %v", err)
	}
	if err := post(elsewhere); !errors.Is(err, payments.ErrBusy) {
		t.Fatalf("a second look-up within the minute: %v, want ErrBusy", err)
	}
}

// Covered sums what an account paid and what it can still pay over its
// open channels, and drops a channel's unspent deposit once a watch sees it closing.
func TestCollectorCovered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := paymentstest.Open(t, 3*paymentstest.TON)
		c := newCollector(t, ch, payments.CollectorConfig{WatchInterval: time.Minute})
		account := hex.EncodeToString(ch.Config.PayerKey)
		if err := c.Add(ch.Payee); err != nil {
			t.Fatal(err)
		}
		if paid, avail := c.Covered(account); paid != 0 || avail != 0 {
			t.Fatalf("before any voucher: %d, %d; a channel counts only once its payer key signed on it", paid, avail)
		}
		v, err := ch.Payer.Pay(100_000_000)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Accept(ch.Ctx, payments.VoucherPost{Channel: ch.Address().String(), Voucher: v}); err != nil {
			t.Fatal(err)
		}
		if paid, avail := c.Covered(account); paid != 100_000_000 || avail != 3*paymentstest.TON-100_000_000 {
			t.Fatalf("covered %d, %d", paid, avail)
		}
		if _, err := payments.StartClose(ch.Ctx, ch.PayerWallet, ch.Config); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute) // the next watch
		synctest.Wait()
		if paid, avail := c.Covered(account); paid != 100_000_000 || avail != 0 {
			t.Fatalf("a closing channel still counts as available after a watch: covered %d, %d", paid, avail)
		}
		if open, closing := c.ChannelsOf(account); open != 0 || closing != 1 {
			t.Fatalf("channels: %d open, %d closing", open, closing)
		}
	})
}

// A watch interval too long for the minimum close delay is refused: a close
// could finish before the payee sees it.
func TestCollectorWantsTheDelayToSpanWatches(t *testing.T) {
	ch := paymentstest.Open(t, paymentstest.TON)
	_, err := payments.NewCollector(payments.CollectorConfig{Wallet: payments.NewWallet(ch.PayeeWallet),
		MinCloseDelay: time.Minute, WatchInterval: time.Minute})
	if err == nil {
		t.Fatal("accepted a 1-minute close delay watched every minute")
	}
}
