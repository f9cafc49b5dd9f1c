package payments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cocoon-go/cocoon/chain"
)

// Defaults of a Stream.
const (
	// DefaultRetry is how long a Stream waits before trying again to pay what it owes or to deliver
	// its newest voucher, when nothing new comes in meanwhile.
	DefaultRetry = 10 * time.Second
	// DefaultPostTimeout bounds one voucher post.
	DefaultPostTimeout = 30 * time.Second
)

// StreamConfig says how a Stream reaches its payee.
type StreamConfig struct {
	// Post delivers a voucher to the payee (see PostTo). Required.
	Post Post
	// Chain, if set, is read for the channel's deposit when a payment does not fit the deposit as
	// last known (the payer may have topped up), at most once per Retry.
	Chain chain.Chain
	// Retry is the wait before trying again; 0: DefaultRetry.
	Retry time.Duration
	// PostTimeout bounds one post; 0: DefaultPostTimeout.
	PostTimeout time.Duration
	// Log hears of what cannot be paid or delivered; nil: slog.Default().
	Log *slog.Logger
}

// Stream pays a payee over HTTP through one channel: the one payer-side type of a role (the client
// towards its proxy, the proxy towards each worker). Add accepts a cost and returns at once; the
// stream signs a new cumulative voucher with its Payer and posts it with its Post, off the caller's
// path. Amounts that arrive while a voucher is being signed or posted are paid together by the
// next one, so under load a payer signs far fewer vouchers than it accepts costs, and only the
// newest voucher is ever posted, since vouchers are cumulative. Signing does not wait for the disk
// (see Payer.Pay).
//
// Nothing is dropped: an amount the payer cannot sign for (the deposit is exhausted, say) stays
// owed (Owed), is reported (Err, and the log), and is tried again on the next Add, after Retry, and
// after reading the deposit again if a Chain is given; a voucher that cannot be posted is posted
// again the same way. A fresh channel is announced with a voucher of total 0, which proves to the
// payee that the payer key holder pays through it. A payee that answers with a newer voucher than
// the payer's last (StaleVoucherError: the payer lost it in a crash) is caught up with at once
// (Payer.CatchUp).
type Stream struct {
	payer *Payer
	cfg   StreamConfig

	mu          sync.Mutex
	owed        uint64 // accepted, not yet in a signed voucher
	unsent      bool   // the newest voucher may not have reached the payee
	busy        bool
	err         error // why the last try failed; nil once all is paid and posted
	timer       *time.Timer
	lastRefresh time.Time
	closed      bool
	idle        *sync.Cond
}

// NewStream pays through payer as cfg says. It posts the newest voucher at once: after a restart it
// may not have reached the payee, and a channel without one is announced with a voucher of total 0.
func NewStream(payer *Payer, cfg StreamConfig) *Stream {
	if cfg.Retry <= 0 {
		cfg.Retry = DefaultRetry
	}
	if cfg.PostTimeout <= 0 {
		cfg.PostTimeout = DefaultPostTimeout
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Stream{payer: payer, cfg: cfg, unsent: true}
	s.idle = sync.NewCond(&s.mu)
	s.mu.Lock()
	s.kick()
	s.mu.Unlock()
	return s
}

// Payer is the channel end the stream signs with.
func (s *Stream) Payer() *Payer { return s.payer }

// Add queues amount to be paid and returns at once.
func (s *Stream) Add(amount uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owed += amount
	s.kick()
}

// Resend posts the newest voucher again: the payee's link has changed, and the last post may have
// been lost with the old one.
func (s *Stream) Resend() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unsent = true
	s.kick()
}

// Owed is what was added and is not in a signed voucher yet, in nanoTON.
func (s *Stream) Owed() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.owed
}

// Err is why the last payment or post failed; nil once everything added is paid and posted.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Flush waits until the stream has tried to pay everything added so far and to post the newest
// voucher, and says whether it succeeded: nil, or ErrOwed with what is still owed and why.
func (s *Stream) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.busy {
		s.idle.Wait()
	}
	return s.pending()
}

// pending is ErrOwed if anything is owed or unposted; s.mu held.
func (s *Stream) pending() error {
	if s.owed == 0 && !s.unsent {
		return nil
	}
	return fmt.Errorf("%w: %d nanoTON not in a voucher, newest voucher posted: %t, on channel %s: %w",
		ErrOwed, s.owed, !s.unsent, s.payer.Address(), s.err)
}

// Close stops retrying, after a last Flush, and returns its outcome. The Payer stays open.
func (s *Stream) Close() error {
	err := s.Flush()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.timer != nil {
		s.timer.Stop()
	}
	for s.busy {
		s.idle.Wait()
	}
	return err
}

// kick starts the run loop unless it runs; s.mu held.
func (s *Stream) kick() {
	if s.busy || s.closed || (s.owed == 0 && !s.unsent) {
		return
	}
	if s.timer != nil {
		s.timer.Stop()
		s.timer = nil
	}
	s.busy = true
	go s.run()
}

// run pays what is owed and posts the newest voucher until there is nothing left, or a try fails
// (then it schedules the next one).
func (s *Stream) run() {
	for {
		s.mu.Lock()
		amount, post := s.owed, s.unsent
		if amount == 0 && !post {
			s.err = nil
		}
		if s.closed || (amount == 0 && !post) {
			s.done()
			return
		}
		s.mu.Unlock()
		var err error
		// A payer restarted after a crash first learns what the payee holds, from the answer to
		// its newest voucher, and pays only after.
		unsure := s.payer.mustCatchUp()
		if !unsure && (amount > 0 || s.payer.Seqno() == 0) {
			err = s.pay(amount)
			post = post || err == nil
		}
		if err == nil && (post || unsure) {
			err = s.post()
		}
		s.mu.Lock()
		if err != nil {
			s.err = err
			if !s.closed {
				s.timer = time.AfterFunc(s.cfg.Retry, func() {
					s.mu.Lock()
					defer s.mu.Unlock()
					s.kick()
				})
			}
			s.done()
			return
		}
		s.mu.Unlock()
	}
}

// done ends a run; s.mu held, and released.
func (s *Stream) done() {
	s.busy = false
	s.idle.Broadcast()
	s.mu.Unlock()
}

// pay signs a voucher for amount more, reading the deposit again first if it does not fit.
func (s *Stream) pay(amount uint64) error {
	_, err := s.payer.Pay(amount)
	if errors.Is(err, ErrInsufficientDeposit) && s.cfg.Chain != nil && s.refreshDue() {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.PostTimeout)
		_, rerr := s.payer.Refresh(ctx, s.cfg.Chain)
		cancel()
		if rerr == nil {
			_, err = s.payer.Pay(amount)
		}
	}
	if err != nil {
		s.cfg.Log.Error("cannot pay: the amount stays owed and is tried again", "channel", s.payer.Address().String(),
			"owed", s.Owed(), "err", err)
		return err
	}
	s.mu.Lock()
	s.owed -= amount
	s.unsent = true
	s.mu.Unlock()
	return nil
}

// refreshDue says whether the deposit may be read again now, and counts it.
func (s *Stream) refreshDue() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.lastRefresh) < s.cfg.Retry {
		return false
	}
	s.lastRefresh = time.Now()
	return true
}

// post delivers the newest voucher.
func (s *Stream) post() error {
	v, err := s.payer.Last()
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.unsent = false
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.PostTimeout)
	defer cancel()
	if err := s.cfg.Post(ctx, VoucherPost{Channel: s.payer.Address().String(), Voucher: v}); err != nil {
		s.mu.Lock()
		s.unsent = true
		s.mu.Unlock()
		var behind *StaleVoucherError
		if errors.As(err, &behind) {
			// The payer lost vouchers in a crash and the payee holds one of them: catch up with it,
			// and post at once. Each catch-up raises the total, so this ends.
			caught, ok, cerr := s.payer.CatchUp(behind.Newest)
			if cerr == nil && ok {
				s.cfg.Log.Warn("the payee holds a voucher this payer lost in a crash; caught up with it", "channel", s.payer.Address().String(),
					"seqno", caught.Seqno, "total", caught.Total)
				return nil
			}
			if cerr != nil {
				err = fmt.Errorf("%w; catching up: %w", err, cerr)
			}
		}
		level := slog.LevelWarn
		if errors.Is(err, ErrPayeeAway) {
			level = slog.LevelDebug
		}
		s.cfg.Log.Log(ctx, level, "voucher not delivered; it is posted again", "channel", s.payer.Address().String(), "seqno", v.Seqno, "err", err)
		return err
	}
	if s.payer.mustCatchUp() {
		// The payee took the newest voucher, so it holds nothing newer: the payer is level.
		if _, _, err := s.payer.CatchUp(v); err != nil {
			return err
		}
	}
	return nil
}
