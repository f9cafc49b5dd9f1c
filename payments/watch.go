package payments

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
)

// Defaults of a Watcher.
const (
	// DefaultWatchInterval is how often a Watcher reads the state of each channel it watches.
	DefaultWatchInterval = time.Minute
	// DefaultRetryMin is the first wait after a failed claim on a closing channel; it doubles up to
	// the watch interval.
	DefaultRetryMin = 5 * time.Second
)

// Watcher keeps a payee's vouchers from being lost to a close. A payer may start closing a channel
// at any time and, once the close delay has passed, take back everything not claimed; a payee that
// claims only past a threshold and on a clean stop would lose whatever it holds below it. So a
// Watcher reads the state of every channel the payee is paid through, at once when it starts and
// then every Interval, and as soon as it sees a close started it claims the newest voucher,
// whatever the threshold. A claim that fails is retried with backoff (RetryMin doubling up to
// Interval) for as long as the channel is closing, logged as an error once the close deadline is
// near (the last quarter of the close delay) or past. Each read also records the channel's deposit
// and what it has paid out in the Payee, so that top-ups are seen.
//
// Set the fields, then call Run; do not change them after.
type Watcher struct {
	// Chain is where the channels are read.
	Chain chain.Chain
	// Channels lists the channels to watch. It is asked on every round, so channels found later are
	// watched too; a Payee that has been closed is skipped.
	Channels func() []*Payee
	// Claim claims ch's newest voucher: Payee.Claim through the payee's wallet, serialized with the
	// wallet's other sends as the role needs.
	Claim func(ctx context.Context, ch *Payee) error
	// Interval between reads of a channel; 0: DefaultWatchInterval.
	Interval time.Duration
	// RetryMin is the first wait after a failed claim; 0: DefaultRetryMin.
	RetryMin time.Duration
	// Log hears of closes, claims and failures; nil: slog.Default().
	Log *slog.Logger

	mu      sync.Mutex
	next    map[*Payee]time.Time       // when to read each channel again
	closing map[string]*ClosingChannel // channels seen closing or closed, by address
	retry   map[*Payee]time.Duration   // the wait after the last failed claim
}

// ClosingChannel is a channel a Watcher has seen its payer start closing.
type ClosingChannel struct {
	Channel    string    `json:"channel"`
	State      string    `json:"state"`       // "closing" or "closed"
	ClosableAt time.Time `json:"closable_at"` // from then on the payer may finish the close
	// Unclaimed is what the newest voucher held would still get from the channel, as last read.
	Unclaimed uint64 `json:"unclaimed"`
	// Failures counts the claims that failed since the close was seen; Error is the last one's.
	Failures int    `json:"failures,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Closing lists the channels the watcher has seen closing or closed, by address.
func (w *Watcher) Closing() []ClosingChannel {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]ClosingChannel, 0, len(w.closing))
	for _, c := range w.closing {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b ClosingChannel) int {
		switch {
		case a.Channel < b.Channel:
			return -1
		case a.Channel > b.Channel:
			return 1
		}
		return 0
	})
	return out
}

// Run watches until ctx is done.
func (w *Watcher) Run(ctx context.Context) {
	for {
		t := time.NewTimer(w.Round(ctx))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Round reads every channel that is due (on the first round, all of them), claims on those that
// need it, and returns how long until the next is due. Run calls it; tests may call it alone.
func (w *Watcher) Round(ctx context.Context) time.Duration {
	interval := w.interval()
	chans := w.Channels()
	w.mu.Lock()
	if w.next == nil {
		w.next, w.closing, w.retry = map[*Payee]time.Time{}, map[string]*ClosingChannel{}, map[*Payee]time.Duration{}
	}
	listed := make(map[*Payee]bool, len(chans))
	for _, ch := range chans {
		listed[ch] = true
	}
	for ch := range w.next {
		if !listed[ch] {
			delete(w.next, ch)
			delete(w.retry, ch)
		}
	}
	w.mu.Unlock()

	for _, ch := range chans {
		if ctx.Err() != nil {
			return interval
		}
		w.mu.Lock()
		at, seen := w.next[ch]
		w.mu.Unlock()
		if seen && time.Now().Before(at) {
			continue
		}
		wait := w.check(ctx, ch)
		w.mu.Lock()
		w.next[ch] = time.Now().Add(wait)
		w.mu.Unlock()
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	soonest := interval
	for _, at := range w.next {
		soonest = min(soonest, time.Until(at))
	}
	return max(soonest, 0)
}

func (w *Watcher) interval() time.Duration {
	if w.Interval > 0 {
		return w.Interval
	}
	return DefaultWatchInterval
}

func (w *Watcher) log() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}

// never is the wait of a channel there is nothing more to watch on: closed for good.
const never = 100 * 365 * 24 * time.Hour

// check reads ch's state, claims if its payer is closing it, and returns how long until it should
// be read again.
func (w *Watcher) check(ctx context.Context, ch *Payee) time.Duration {
	addr := ch.Address().String()
	log := w.log().With("channel", addr)
	st, err := ch.Refresh(ctx, w.Chain)
	if errors.Is(err, ErrClosed) {
		return never // the role let go of it
	}
	if err != nil {
		if c := w.closingOf(addr); c != nil && c.State == contracts.ChannelClosing.String() {
			return w.failed(ctx, ch, c, log, err)
		}
		log.Warn("watching channel: cannot read its state", "err", err)
		return w.interval()
	}
	unclaimed := ch.Unclaimed()
	switch st.Status {
	case contracts.ChannelOpen:
		// Accept refuses vouchers above the deposit as known and an open channel's deposit only
		// grows, so this is a deposit announced but never paid in (SetDeposit): say so, as no claim
		// of that voucher can go through.
		if total := ch.Total(); total > st.Deposit {
			log.Error("the newest voucher is above the channel's deposit: the chain will refuse to pay it",
				"total", total, "deposit", st.Deposit)
		}
		w.mu.Lock()
		delete(w.closing, addr)
		delete(w.retry, ch)
		w.mu.Unlock()
		return w.interval()
	case contracts.ChannelClosed:
		c, fresh := w.seen(addr, st, unclaimed)
		if fresh || c.State != contracts.ChannelClosed.String() {
			if unclaimed > 0 {
				log.Error("channel closed by its payer with vouchers unclaimed: they are lost",
					"unclaimed", unclaimed, "closable_at", st.ClosableAt().UTC())
			} else {
				log.Info("channel closed by its payer; everything owed was claimed", "claimed", st.Claimed)
			}
		}
		w.mu.Lock()
		c.State, c.Unclaimed = contracts.ChannelClosed.String(), unclaimed
		w.mu.Unlock()
		return never
	}

	c, fresh := w.seen(addr, st, unclaimed)
	left := w.timeLeft(ctx, st)
	if fresh {
		log.Warn("payer started closing the channel: claiming the newest voucher now, whatever the threshold",
			"unclaimed", unclaimed, "closable_at", st.ClosableAt().UTC(), "time_left", left.Round(time.Second))
	}
	if unclaimed == 0 {
		return w.interval() // the payer may still pay during the close: look again
	}
	if err := w.Claim(ctx, ch); err != nil {
		if ctx.Err() != nil {
			return w.interval() // stopping: the role's clean stop claims
		}
		return w.failed(ctx, ch, c, log, err)
	}
	w.mu.Lock()
	delete(w.retry, ch)
	c.Unclaimed, c.Error = ch.Unclaimed(), ""
	w.mu.Unlock()
	log.Info("claimed the newest voucher of a closing channel before its deadline",
		"claimed", ch.Claimed(), "closable_at", st.ClosableAt().UTC(), "time_left", left.Round(time.Second))
	return w.interval()
}

// seen records that the channel at addr is closing (or closed) as st says; fresh if it is news.
func (w *Watcher) seen(addr string, st *contracts.ChannelState, unclaimed uint64) (_ *ClosingChannel, fresh bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.closing[addr]
	if c == nil {
		c, fresh = &ClosingChannel{Channel: addr, State: st.Status.String()}, true
		w.closing[addr] = c
	}
	c.ClosableAt, c.Unclaimed = st.ClosableAt(), unclaimed
	return c, fresh
}

// IsClosing reports whether the watcher has seen the payer of the channel
// at addr (its address as Payee.Address().String() gives it) start closing
// it, or close it: a payee should stop serving on credit through it.
func (w *Watcher) IsClosing(addr string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closing[addr] != nil
}

func (w *Watcher) closingOf(addr string) *ClosingChannel {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c := w.closing[addr]; c != nil {
		cp := *c
		return &cp
	}
	return nil
}

// timeLeft is how long until the payer may finish the close, by the chain's clock.
func (w *Watcher) timeLeft(ctx context.Context, st *contracts.ChannelState) time.Duration {
	now, err := w.Chain.Now(ctx)
	if err != nil {
		now = time.Now()
	}
	return st.ClosableAt().Sub(now)
}

// failed records a failed claim (or read) on closing channel c, logs it the louder the nearer the
// deadline, and returns the wait before the next try.
func (w *Watcher) failed(ctx context.Context, ch *Payee, c *ClosingChannel, log *slog.Logger, err error) time.Duration {
	w.mu.Lock()
	wait := w.retry[ch] * 2
	if wait == 0 {
		wait = w.RetryMin
		if wait <= 0 {
			wait = DefaultRetryMin
		}
	}
	wait = min(wait, w.interval())
	w.retry[ch] = wait
	if cur := w.closing[c.Channel]; cur != nil {
		cur.Failures++
		cur.Error = err.Error()
		c = cur
	}
	failures, unclaimed, closableAt := c.Failures, c.Unclaimed, c.ClosableAt
	w.mu.Unlock()

	now, nerr := w.Chain.Now(ctx)
	if nerr != nil {
		now = time.Now()
	}
	left := closableAt.Sub(now)
	args := []any{"unclaimed", unclaimed, "closable_at", closableAt.UTC(), "time_left", left.Round(time.Second),
		"failures", failures, "retry_in", wait, "err", err}
	switch delay := ch.ch.CloseDelay; {
	case left <= 0:
		log.Error("CLAIM OVERDUE: the close deadline has passed and the payer may take back what the newest voucher is owed at any moment; retrying", args...)
	case left <= delay/4:
		log.Error("claim on a closing channel failed and its close deadline is near; retrying", args...)
	default:
		log.Warn("claim on a closing channel failed; retrying", args...)
	}
	return wait
}
