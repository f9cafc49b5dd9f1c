package payments

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/contracts"
)

// testPayer is a payer end of a channel that exists only on disk, with deposit.
func testPayer(t *testing.T, deposit uint64) *Payer {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	a := address.NewAddress(0, 0, make([]byte, 32))
	b := address.NewAddress(0, 0, append(make([]byte, 31), 1))
	ch := contracts.ChannelConfig{Payer: a, Payee: b, PayerKey: key.Public().(ed25519.PublicKey), PayeeKey: key.Public().(ed25519.PublicKey), Nonce: 1, CloseDelay: time.Hour}
	payer, err := OpenPayer(t.TempDir(), ch, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { payer.Close() })
	if err := payer.SetDeposit(deposit); err != nil {
		t.Fatal(err)
	}
	return payer
}

// posts records the vouchers a Stream posts; fail, while set, refuses them.
type posts struct {
	mu       sync.Mutex
	vouchers []contracts.SignedVoucher
	fail     error
}

func (p *posts) post(_ context.Context, v VoucherPost) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.vouchers = append(p.vouchers, v.Voucher)
	return nil
}

func (p *posts) last() contracts.SignedVoucher {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.vouchers[len(p.vouchers)-1]
}

var quiet = slog.New(slog.DiscardHandler)

func TestStreamCoalescesAndAddsUp(t *testing.T) {
	payer := testPayer(t, 1<<40)
	var got posts
	s := NewStream(payer, StreamConfig{Post: got.post, Log: quiet})
	defer s.Close()
	var wg sync.WaitGroup
	const n = 200
	for i := range n {
		wg.Go(func() { s.Add(uint64(i + 1)) })
	}
	wg.Wait()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	want := uint64(n * (n + 1) / 2)
	if payer.Total() != want {
		t.Fatalf("voucher total %d, want %d", payer.Total(), want)
	}
	if last := got.last(); last.Total != want || len(got.vouchers) > n+1 {
		t.Errorf("%d vouchers, last total %d", len(got.vouchers), last.Total)
	}
	for i := 1; i < len(got.vouchers); i++ {
		if got.vouchers[i].Seqno <= got.vouchers[i-1].Seqno || got.vouchers[i].Total < got.vouchers[i-1].Total {
			t.Fatalf("vouchers out of order at %d", i)
		}
	}
	t.Logf("%d amounts paid by %d vouchers", n, len(got.vouchers))
}

// A fresh channel is announced with a voucher of total 0, which shows the
// payee that the payer key holder pays through it.
func TestStreamAnnouncesAFreshChannel(t *testing.T) {
	payer := testPayer(t, 1000)
	var got posts
	s := NewStream(payer, StreamConfig{Post: got.post, Log: quiet})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(got.vouchers) != 1 || got.vouchers[0].Seqno != 1 || got.vouchers[0].Total != 0 {
		t.Fatalf("posted %+v, want one voucher seqno 1, total 0", got.vouchers)
	}
}

// Finding 6: an amount the deposit does not cover stays owed, is reported,
// and is paid once the deposit allows it; it is never dropped.
func TestStreamKeepsWhatItCannotPay(t *testing.T) {
	payer := testPayer(t, 100)
	var got posts
	s := NewStream(payer, StreamConfig{Post: got.post, Log: quiet, Retry: time.Hour})
	defer s.Close()
	s.Add(60)
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	s.Add(60)
	err := s.Flush()
	if !errors.Is(err, ErrOwed) || !errors.Is(err, ErrInsufficientDeposit) || s.Owed() != 60 || s.Err() == nil {
		t.Fatalf("an amount above the deposit: Flush %v, owed %d; want ErrOwed, 60 owed", err, s.Owed())
	}
	if err := payer.SetDeposit(200); err != nil {
		t.Fatal(err)
	}
	s.Add(1) // the next Add pays what was owed too
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if payer.Total() != 121 || got.last().Total != 121 || s.Owed() != 0 || s.Err() != nil {
		t.Fatalf("after a top-up: voucher total %d, posted %d, owed %d; want 121, 121, 0", payer.Total(), got.last().Total, s.Owed())
	}
}

// A voucher the payee did not take is posted again after Retry, not before,
// with nothing new added.
func TestStreamPostsAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		payer := testPayer(t, 1000)
		got := posts{fail: errors.New("payee away")}
		s := NewStream(payer, StreamConfig{Post: got.post, Log: quiet, Retry: time.Minute})
		defer s.Close()
		s.Add(7)
		if err := s.Flush(); !errors.Is(err, ErrOwed) {
			t.Fatalf("undelivered: %v, want ErrOwed", err)
		}
		got.mu.Lock()
		got.fail = nil
		got.mu.Unlock()
		posted := func() int {
			got.mu.Lock()
			defer got.mu.Unlock()
			return len(got.vouchers)
		}
		time.Sleep(time.Minute - time.Nanosecond)
		synctest.Wait()
		if n := posted(); n != 0 {
			t.Fatalf("%d vouchers posted before Retry", n)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if n := posted(); n != 1 || got.last().Total != 7 || s.Err() != nil {
			t.Fatalf("after Retry: %d posted, error %v; want the voucher of 7 posted again", n, s.Err())
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
	})
}
