package payments

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cocoon-go/cocoon/contracts"
)

// logs keeps the records a Watcher logs.
type logs struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logs) Enabled(context.Context, slog.Level) bool { return true }
func (l *logs) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r)
	return nil
}
func (l *logs) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logs) WithGroup(string) slog.Handler      { return l }

// count is how many records at level have a message containing msg.
func (l *logs) count(level slog.Level, msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Level == level && strings.Contains(r.Message, msg) {
			n++
		}
	}
	return n
}

// watcher watches q for w, claiming through claim (nil: Payee.Claim through the payee's wallet).
func (w *world) watcher(q *Payee, claim func(context.Context, *Payee) error) (*Watcher, *logs) {
	if claim == nil {
		claim = func(ctx context.Context, ch *Payee) error { return ch.Claim(ctx, w.payeeW) }
	}
	l := &logs{}
	return &Watcher{Chain: w.c, Channels: func() []*Payee { return []*Payee{q} }, Claim: claim,
		Interval: time.Nanosecond, Log: slog.New(l)}, l
}

// The payer starts a close while the payee holds vouchers far below any claim threshold: the
// watcher's next round claims them, and the payer's FinishClose, after the delay, gets back only
// the rest.
func TestWatcherClaimsWhenThePayerStartsAClose(t *testing.T) {
	w := newWorld(t)
	p, q := w.open(2 * ton)
	for range 3 {
		v, _ := p.Pay(50_000_000)
		if err := q.Accept(v); err != nil {
			t.Fatal(err)
		}
	}
	var claims atomic.Int32
	wt, l := w.watcher(q, func(ctx context.Context, ch *Payee) error {
		claims.Add(1)
		return ch.Claim(ctx, w.payeeW)
	})
	txs := w.txs()
	wt.Round(w.ctx)
	if claims.Load() != 0 || w.txs() != txs || len(wt.Closing()) != 0 {
		t.Fatalf("an open channel: %d claims, %d transactions, closing %+v", claims.Load(), w.txs()-txs, wt.Closing())
	}

	payer0, payee0, channel0, fees0 := w.balance(w.payerW.Address()), w.balance(w.payeeW.Address()), w.balance(w.addr()), w.fees()
	st, err := StartClose(w.ctx, w.payerW, w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	wt.Round(w.ctx)
	if claims.Load() != 1 || q.Claimed() != 150_000_000 || w.state().Claimed != 150_000_000 {
		t.Fatalf("after the close started: %d claims, payee claimed %d, chain %+v", claims.Load(), q.Claimed(), w.state())
	}
	if l.count(slog.LevelWarn, "payer started closing") != 1 || l.count(slog.LevelInfo, "claimed the newest voucher") != 1 {
		t.Errorf("logs: %+v", l.recs)
	}
	want := ClosingChannel{Channel: w.addr().String(), State: "closing", ClosableAt: st.ClosableAt()}
	if got := wt.Closing(); len(got) != 1 || got[0] != want {
		t.Fatalf("closing %+v, want %+v", got, want)
	}
	txs = w.txs()
	wt.Round(w.ctx) // nothing left to claim
	if claims.Load() != 1 || w.txs() != txs {
		t.Fatalf("a second round claimed again: %d claims, %d transactions", claims.Load(), w.txs()-txs)
	}

	w.clock.advance(closeDelay)
	final, err := FinishClose(w.ctx, w.payerW, w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if final.Claimed != 150_000_000 || w.balance(w.addr()) != 0 {
		t.Fatalf("final %+v, channel holds %d", final, w.balance(w.addr()))
	}
	w.conserved()
	payer, payee, fees := w.balance(w.payerW.Address()), w.balance(w.payeeW.Address()), w.fees()-fees0
	if payer0+payee0+channel0 != payer+payee+fees {
		t.Fatalf("payer %d → %d, payee %d → %d, channel %d → 0, fees %d", payer0, payer, payee0, payee, channel0, fees)
	}
	// The payer got back the deposit left, and more (the top-up reserve); the payee what it was owed
	// less its claim's fees.
	if payer < payer0 || payer-payer0 < 2*ton-150_000_000 || payee < payee0 || payee-payee0 > 150_000_000 || payee-payee0 < 140_000_000 {
		t.Fatalf("payer got back %d (deposit left %d), payee received %d of the 150000000 it was owed", int64(payer-payer0), 2*ton-150_000_000, int64(payee-payee0))
	}
	wt.Round(w.ctx)
	if got := wt.Closing(); len(got) != 1 || got[0].State != "closed" || l.count(slog.LevelInfo, "everything owed was claimed") != 1 {
		t.Fatalf("after the close: %+v", got)
	}
}

// A channel that is not closing is read, never claimed below the threshold, however often the
// watcher looks; a top-up it reads is recorded in the payee at the next interval.
func TestWatcherLeavesAnOpenChannelAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		p, q := w.open(1 * ton)
		v, _ := p.Pay(10_000_000)
		if err := q.Accept(v); err != nil {
			t.Fatal(err)
		}
		var claims atomic.Int32
		wt, _ := w.watcher(q, func(context.Context, *Payee) error { claims.Add(1); return nil })
		wt.Interval = time.Minute
		ctx, cancel := context.WithCancel(w.ctx)
		done := make(chan struct{})
		go func() { defer close(done); wt.Run(ctx) }()
		synctest.Wait() // the first round has read the channel
		if _, err := TopUp(w.ctx, w.payerW, w.cfg, 1*ton); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute - time.Nanosecond)
		synctest.Wait()
		if q.Deposit() != 1*ton {
			t.Fatalf("deposit %d before the next interval; want the 1 TON read first", q.Deposit())
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if q.Deposit() != 2*ton {
			t.Fatalf("deposit %d after the next interval; want the top-up read", q.Deposit())
		}
		time.Sleep(time.Hour) // sixty more looks
		cancel()
		<-done
		if claims.Load() != 0 || q.Claimed() != 0 || len(wt.Closing()) != 0 {
			t.Fatalf("open channel: %d claims, %d claimed, closing %+v", claims.Load(), q.Claimed(), wt.Closing())
		}
	})
}

// A claim that fails is retried with backoff (RetryMin, then doubling), loudly once the close
// deadline is near, until it goes through; the close then returns only the rest.
func TestWatcherRetriesAFailingClaim(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		p, q := w.open(1 * ton)
		v, _ := p.Pay(70_000_000)
		if err := q.Accept(v); err != nil {
			t.Fatal(err)
		}
		if _, err := StartClose(w.ctx, w.payerW, w.cfg); err != nil {
			t.Fatal(err)
		}
		w.clock.advance(closeDelay * 3 / 4) // the last quarter of the delay
		var tries atomic.Int32
		wt, l := w.watcher(q, func(ctx context.Context, ch *Payee) error {
			if tries.Add(1) <= 3 {
				return errors.New("wallet unreachable")
			}
			return ch.Claim(ctx, w.payeeW)
		})
		wt.Interval, wt.RetryMin = time.Hour, time.Second // only retries can make a second try
		ctx, cancel := context.WithCancel(w.ctx)
		done := make(chan struct{})
		start := time.Now()
		go func() { defer close(done); wt.Run(ctx) }()
		// Tries at 0, 1 s, 3 s and 7 s: waits of 1, 2 and 4 seconds, none earlier.
		for i, at := range []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second} {
			if i > 0 {
				time.Sleep(time.Until(start.Add(at - time.Nanosecond)))
				synctest.Wait()
				if n := tries.Load(); n != int32(i) {
					t.Fatalf("%d tries just before %v, want %d", n, at, i)
				}
				time.Sleep(time.Nanosecond)
			}
			synctest.Wait()
			if n := tries.Load(); n != int32(i+1) {
				t.Fatalf("%d tries at %v, want %d", n, at, i+1)
			}
		}
		if q.Claimed() != 70_000_000 {
			t.Fatalf("claimed %d after the fourth try", q.Claimed())
		}
		time.Sleep(time.Hour - time.Second) // no further try within the interval
		synctest.Wait()
		cancel()
		<-done
		if n := tries.Load(); n != 4 {
			t.Errorf("%d tries, want 3 failures and a success", n)
		}
		if got := wt.Closing(); len(got) != 1 || got[0].Failures != 3 || got[0].Error != "" || got[0].Unclaimed != 0 {
			t.Errorf("closing %+v", got)
		}
		if n := l.count(slog.LevelError, "deadline is near"); n != 3 {
			t.Errorf("%d errors logged about the near deadline, want 3", n)
		}
		w.clock.advance(closeDelay / 4)
		final, err := FinishClose(w.ctx, w.payerW, w.cfg)
		if err != nil || final.Claimed != 70_000_000 {
			t.Fatalf("finish close: %+v, %v", final, err)
		}
		w.conserved()
	})
}

// Past the deadline, a failing claim is an overdue error; a channel the payer has closed with
// vouchers unclaimed is reported as a loss, and nothing is sent for it.
func TestWatcherPastTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		p, q := w.open(1 * ton)
		v, _ := p.Pay(30_000_000)
		q.Accept(v)
		if _, err := StartClose(w.ctx, w.payerW, w.cfg); err != nil {
			t.Fatal(err)
		}
		w.clock.advance(closeDelay + time.Second)
		wt, l := w.watcher(q, func(context.Context, *Payee) error { return errors.New("wallet unreachable") })
		wt.Round(w.ctx)
		if l.count(slog.LevelError, "CLAIM OVERDUE") != 1 {
			t.Fatalf("logs: %+v", l.recs)
		}
		if _, err := FinishClose(w.ctx, w.payerW, w.cfg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // past the retry, on the bubble's clock
		txs := w.txs()
		wt.Round(w.ctx)
		got := wt.Closing()
		if w.txs() != txs || len(got) != 1 || got[0].State != contracts.ChannelClosed.String() || got[0].Unclaimed != 30_000_000 {
			t.Fatalf("after the close: %d transactions, %+v", w.txs()-txs, got)
		}
		if l.count(slog.LevelError, "they are lost") != 1 {
			t.Fatalf("logs: %+v", l.recs)
		}
	})
}
