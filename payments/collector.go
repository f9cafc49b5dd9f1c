package payments

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
)

// Defaults and bounds of a Collector.
const (
	// DefaultMinCloseDelay is the shortest close delay a Collector accepts by default: the root's
	// client and worker close delay in a `cocoon up` network, and what payers open channels with.
	DefaultMinCloseDelay = time.Hour
	// WatchesPerCloseDelay is how many watch intervals a channel's close delay must span at least, so
	// that a payee sees a close (and claims, and retries a failed claim) well before the payer may
	// finish it.
	WatchesPerCloseDelay = 4
	// DefaultClaimThreshold is the unclaimed amount at which a Collector claims a channel: 1 TON.
	DefaultClaimThreshold uint64 = 1_000_000_000
	// DefaultMaxChannels bounds the channels a Collector keeps.
	DefaultMaxChannels = 10_000
	// MaxChannelsPerAccount bounds the channels one payer key may pay through at once.
	MaxChannelsPerAccount = 16
	// DefaultMaxLookups bounds the chain reads of unknown channels a Collector makes per minute.
	DefaultMaxLookups = 120
	// unknownFor is how long a channel the chain refused (not deployed, not a Cocoon channel, another
	// payee, not open, too short a delay) is refused without reading the chain again.
	unknownFor = time.Minute
	// maxUnknown bounds the refused channels remembered.
	maxUnknown = 4096
)

// CollectorConfig says what a Collector is paid through and how it claims.
type CollectorConfig struct {
	// Wallet is the payee's wallet: every channel must pay it, and claims go through it.
	Wallet *Wallet
	// Chain is where channels are read; nil: Wallet.Chain().
	Chain chain.Chain
	// Dir keeps the ends of channels found from their first voucher; "": only channels given to Add
	// are accepted.
	Dir string
	// MinCloseDelay refuses channels whose payer could take its deposit back sooner after starting a
	// close: the root's clientCloseDelay for a proxy, its workerCloseDelay for a worker. 0:
	// DefaultMinCloseDelay. It must be at least WatchesPerCloseDelay watch intervals.
	MinCloseDelay time.Duration
	// ClaimThreshold is the unclaimed amount on a channel at which it is claimed; 0:
	// DefaultClaimThreshold. Closing channels are claimed whatever it is, and everything on Close.
	ClaimThreshold uint64
	// WatchInterval is how often each channel's state is read (see Watcher); 0: DefaultWatchInterval.
	WatchInterval time.Duration
	// MaxChannels bounds the channels kept; 0: DefaultMaxChannels.
	MaxChannels int
	// MaxLookups bounds the chain reads of unknown channels per minute; 0: DefaultMaxLookups.
	MaxLookups int
	// Log hears of channels found, claims and failures; nil: slog.Default().
	Log *slog.Logger
	// OnVoucher and OnClaim, if set, hear of every voucher accepted or refused by Accept and every
	// claim made or failed (err nil when it succeeded), for an operator's counters. They must return
	// at once.
	OnVoucher, OnClaim func(err error)
}

// Collector is the payee side of every channel a role is paid through — the proxy's from its
// clients, a worker's from its proxies. It finds a channel from the first voucher on it (reading the
// chain once, and refusing one that does not pay its wallet, is not open, or whose close delay is
// too short), checks and keeps each voucher, watches every channel for a close, and claims: past
// the threshold, at once on a close, and everything on Close; a claim that fails (the chain
// unreachable) is made again after a wait (see retryLater). Claims go through the Wallet one at a
// time.
//
// An account is a payer's voucher key, hex. A channel counts for its account only once a voucher
// signed by that key has been accepted on it, so a third party that deploys a channel naming
// someone else's key gains nothing; and an account counts all its channels, so a payer that moves
// to a new channel keeps what it paid on the old one. Covered answers from memory.
type Collector struct {
	cfg   CollectorConfig
	chain chain.Chain
	log   *slog.Logger
	watch *Watcher

	stopWatch context.CancelFunc
	watchDone chan struct{}

	findMu sync.Mutex // one look-up at a time

	mu       sync.Mutex
	byAddr   map[string]*Payee   // every channel kept, by address
	owned    map[*Payee]bool     // ends the collector opened, and closes
	accounts map[string][]*Payee // by payer key, hex: channels with an accepted voucher
	account  map[*Payee]string   // the inverse, for registered channels
	unknown  map[string]unknownChannel
	window   time.Time // the current minute of look-ups
	lookups  int       // look-ups in it
	pending  map[*Payee]bool
	claiming bool
	// retry is the wait before a failed claim is made again, by channel,
	// for the channels with a retry pending (see retryLater).
	retry    map[*Payee]time.Duration
	retrying map[*Payee]bool
	claimsWG sync.WaitGroup
	closed   bool
}

// unknownChannel is a refused channel, remembered until.
type unknownChannel struct {
	until time.Time
	err   error
}

// NewCollector checks cfg and starts watching. Call Close to stop it: it claims what is unclaimed.
func NewCollector(cfg CollectorConfig) (*Collector, error) {
	if cfg.Wallet == nil {
		return nil, errors.New("payments: a collector needs a wallet")
	}
	if cfg.Chain == nil {
		cfg.Chain = cfg.Wallet.Chain()
	}
	if cfg.MinCloseDelay == 0 {
		cfg.MinCloseDelay = DefaultMinCloseDelay
	}
	if cfg.WatchInterval == 0 {
		cfg.WatchInterval = DefaultWatchInterval
	}
	if cfg.MinCloseDelay < WatchesPerCloseDelay*cfg.WatchInterval {
		return nil, fmt.Errorf("payments: a minimum close delay of %v is under %d watch intervals of %v: a close could finish before it is seen",
			cfg.MinCloseDelay, WatchesPerCloseDelay, cfg.WatchInterval)
	}
	if cfg.ClaimThreshold == 0 {
		cfg.ClaimThreshold = DefaultClaimThreshold
	}
	if cfg.MaxChannels <= 0 {
		cfg.MaxChannels = DefaultMaxChannels
	}
	if cfg.MaxLookups <= 0 {
		cfg.MaxLookups = DefaultMaxLookups
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	c := &Collector{cfg: cfg, chain: cfg.Chain, log: cfg.Log,
		byAddr: map[string]*Payee{}, owned: map[*Payee]bool{}, accounts: map[string][]*Payee{}, account: map[*Payee]string{},
		unknown: map[string]unknownChannel{}, pending: map[*Payee]bool{},
		retry: map[*Payee]time.Duration{}, retrying: map[*Payee]bool{}}
	c.watch = &Watcher{Chain: c.chain, Channels: c.Channels, Claim: c.Claim, Interval: cfg.WatchInterval, Log: cfg.Log}
	ctx, cancel := context.WithCancel(context.Background())
	c.stopWatch, c.watchDone = cancel, make(chan struct{})
	go func() {
		defer close(c.watchDone)
		c.watch.Run(ctx)
	}()
	return c, nil
}

// Add collects through p, a channel opened beforehand (`cocoon up` opens its own); the caller keeps
// owning p and closes it after Close. It counts for its payer's account once it holds a voucher.
func (c *Collector) Add(p *Payee) error {
	if err := c.check(p.Address().String(), p.ch, contracts.ChannelOpen); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("%w: collector", ErrClosed)
	}
	c.byAddr[p.Address().String()] = p
	if _, ok := p.Newest(); ok {
		c.register(p)
	}
	return nil
}

// check refuses a channel the collector will not be paid through; status is its state on chain.
func (c *Collector) check(addr string, ch contracts.ChannelConfig, status contracts.ChannelStatus) error {
	switch {
	case !ch.Payee.Equals(c.cfg.Wallet.Address()):
		return fmt.Errorf("%w: channel %s pays %s, not %s", ErrRefusedChannel, addr, ch.Payee, c.cfg.Wallet.Address())
	case status != contracts.ChannelOpen:
		return fmt.Errorf("%w: channel %s is %s", ErrRefusedChannel, addr, status)
	case ch.CloseDelay < c.cfg.MinCloseDelay:
		return fmt.Errorf("%w: channel %s has a close delay of %v, under the minimum %v", ErrRefusedChannel, addr, ch.CloseDelay, c.cfg.MinCloseDelay)
	}
	return nil
}

// Accept takes a voucher posted on post.Channel: it finds the channel (see Collector), keeps the
// voucher if it is newer, and queues a claim past the threshold. A voucher no newer than the one kept
// is not an error, since posts may cross; one newer but with a lower total is a *StaleVoucherError
// (its payer lost vouchers in a crash, and catches up from the one it carries); one the channel's
// deposit does not cover makes the collector read the deposit once more. Errors wrap
// ErrUnknownChannel, ErrRefusedChannel, ErrBusy, ErrBadSignature, ErrInsufficientDeposit and the
// other errors of Payee.Accept.
func (c *Collector) Accept(ctx context.Context, post VoucherPost) (err error) {
	if c.cfg.OnVoucher != nil {
		defer func() { c.cfg.OnVoucher(err) }()
	}
	p, err := c.find(ctx, post.Channel, post.Voucher)
	if err != nil {
		return err
	}
	err = p.Accept(post.Voucher)
	if errors.Is(err, ErrInsufficientDeposit) && c.allowLookup() {
		// The payer may have topped up; its voucher is signed, so this read is on its account.
		if _, rerr := p.Refresh(ctx, c.chain); rerr == nil {
			err = p.Accept(post.Voucher)
		}
	}
	var behind *StaleVoucherError
	if err != nil && (!errors.Is(err, ErrStale) || errors.As(err, &behind)) {
		return err
	}
	c.mu.Lock()
	c.register(p)
	c.mu.Unlock()
	if p.ShouldClaim(c.cfg.ClaimThreshold) {
		c.queueClaim(p)
	}
	return nil
}

// register counts p for its payer's account; c.mu held.
func (c *Collector) register(p *Payee) {
	if _, ok := c.account[p]; ok {
		return
	}
	acct := hex.EncodeToString(p.ch.PayerKey)
	c.account[p] = acct
	c.accounts[acct] = append(c.accounts[acct], p)
}

// find returns the end of the channel at addr, looking it up on chain the first time; v, the voucher
// posted on it, must be signed by its payer key before anything is kept of it.
func (c *Collector) find(ctx context.Context, addr string, v contracts.SignedVoucher) (*Payee, error) {
	if p, err := c.known(addr); p != nil || err != nil {
		return p, err
	}
	if c.cfg.Dir == "" {
		return nil, fmt.Errorf("%w: %s", ErrUnknownChannel, addr)
	}
	c.findMu.Lock()
	defer c.findMu.Unlock()
	if p, err := c.known(addr); p != nil || err != nil {
		return p, err
	}
	c.mu.Lock()
	full := len(c.byAddr) >= c.cfg.MaxChannels
	c.mu.Unlock()
	if full {
		return nil, fmt.Errorf("%w: %d channels kept", ErrBusy, c.cfg.MaxChannels)
	}
	if !c.allowLookup() {
		return nil, fmt.Errorf("%w: more than %d a minute", ErrBusy, c.cfg.MaxLookups)
	}
	cfg, state, err := Find(ctx, c.chain, addr)
	if errors.Is(err, ErrNotChannel) || errors.Is(err, chain.ErrNotActive) {
		err = fmt.Errorf("%w: %w", ErrUnknownChannel, err)
		c.remember(addr, err)
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	if err := c.check(addr, cfg, state.Status); err != nil {
		c.remember(addr, err)
		return nil, err
	}
	id, _ := cfg.ID()
	if v.ChannelID != id || !v.Verify(cfg.PayerKey) {
		// Nothing is kept of a channel until its payer key has signed for it.
		return nil, fmt.Errorf("%w: channel %s, voucher seqno %d", ErrBadSignature, addr, v.Seqno)
	}
	c.mu.Lock()
	n := len(c.accounts[hex.EncodeToString(cfg.PayerKey)])
	c.mu.Unlock()
	if n >= MaxChannelsPerAccount {
		return nil, fmt.Errorf("%w: account %x pays through %d channels already", ErrBusy, cfg.PayerKey, n)
	}
	p, err := OpenPayee(c.cfg.Dir, cfg)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	err = p.record(state)
	p.mu.Unlock()
	if err != nil {
		p.Close()
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		p.Close()
		return nil, fmt.Errorf("%w: collector", ErrClosed)
	}
	c.byAddr[addr], c.owned[p] = p, true
	c.log.Info("channel found", "channel", addr, "account", hex.EncodeToString(cfg.PayerKey), "deposit", state.Deposit)
	return p, nil
}

// known is the channel at addr if kept, or the error it was refused with lately.
func (c *Collector) known(addr string) (*Payee, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%w: collector", ErrClosed)
	}
	if p := c.byAddr[addr]; p != nil {
		return p, nil
	}
	if u, ok := c.unknown[addr]; ok {
		if time.Now().Before(u.until) {
			return nil, u.err
		}
		delete(c.unknown, addr)
	}
	return nil, nil
}

// remember refuses the channel at addr with err for a while, without reading the chain.
func (c *Collector) remember(addr string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if len(c.unknown) >= maxUnknown {
		for a, u := range c.unknown {
			if now.After(u.until) {
				delete(c.unknown, a)
			}
		}
	}
	for a := range c.unknown {
		if len(c.unknown) < maxUnknown {
			break
		}
		delete(c.unknown, a)
	}
	c.unknown[addr] = unknownChannel{until: now.Add(unknownFor), err: err}
}

// allowLookup counts a chain read on behalf of a voucher post; false past the minute's bound.
func (c *Collector) allowLookup() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := time.Now(); now.Sub(c.window) >= time.Minute {
		c.window, c.lookups = now, 0
	}
	if c.lookups >= c.cfg.MaxLookups {
		return false
	}
	c.lookups++
	return true
}

// Covered is what account (a payer's voucher key, hex) has paid and still has to pay with, from
// memory (no chain read, so it is cheap enough for every request): paid sums the newest voucher's
// total over all the account's channels; available sums the unspent deposit (deposit − newest
// total) over those of them that are open — not seen closing or closed by the watch, which reads
// each channel every WatchInterval. Deposits are as last read: at discovery, on each watch, and
// when a voucher exceeds the deposit known. Channels count only once a voucher on them was
// accepted (see Collector). A proxy's credit check builds on it: credit = min(limit, available).
func (c *Collector) Covered(account string) (paid, available uint64) {
	c.mu.Lock()
	chans := append([]*Payee(nil), c.accounts[account]...)
	c.mu.Unlock()
	for _, p := range chans {
		st := p.state()
		paid += st.Total
		if !c.watch.IsClosing(p.Address().String()) && st.Deposit > st.Total {
			available += st.Deposit - st.Total
		}
	}
	return paid, available
}

// Account is the account (payer key, hex) the channel at addr counts for, once a voucher on it was
// accepted; a payee that knows who posted the voucher (the worker, by the proxy's TLS key) learns
// from it whose channel it is.
func (c *Collector) Account(addr string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, ok := c.account[c.byAddr[addr]]
	return a, ok
}

// Channels lists the channels kept.
func (c *Collector) Channels() []*Payee {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*Payee, 0, len(c.byAddr))
	for _, p := range c.byAddr {
		out = append(out, p)
	}
	return out
}

// Closing lists the channels the watch has seen their payers start closing, or close.
func (c *Collector) Closing() []ClosingChannel { return c.watch.Closing() }

// IsClosing reports whether the watch has seen the payer of the channel at addr start closing it.
func (c *Collector) IsClosing(addr string) bool { return c.watch.IsClosing(addr) }

// Claim claims p's newest voucher through the wallet, after any other send of it, and waits.
func (c *Collector) Claim(ctx context.Context, p *Payee) error {
	err := c.cfg.Wallet.Do(func(w *chain.Wallet) error { return p.Claim(ctx, w) })
	if c.cfg.OnClaim != nil {
		c.cfg.OnClaim(err)
	}
	return err
}

// queueClaim claims p in the background; one claim goroutine drains every queued channel.
func (c *Collector) queueClaim(p *Payee) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.pending[p] {
		return
	}
	c.pending[p] = true
	if c.claiming {
		return
	}
	c.claiming = true
	c.claimsWG.Go(c.runClaims)
}

func (c *Collector) runClaims() {
	for {
		c.mu.Lock()
		var p *Payee
		for q := range c.pending {
			p = q
			break
		}
		if p == nil {
			c.claiming = false
			c.mu.Unlock()
			return
		}
		delete(c.pending, p)
		c.mu.Unlock()
		c.retryLater(p, c.claimLogged(p))
	}
}

// retryLater queues p's claim again after a wait if it failed with err: a
// claim that failed while the chain was unreachable must not wait for the
// payer's next voucher, which may never come. The wait is DefaultRetryMin,
// doubling up to the watch interval while the retries fail; failures of
// claims made meanwhile (new vouchers) neither add a retry nor lengthen it.
// A closed channel is not retried: the watch claims what it can of it.
func (c *Collector) retryLater(p *Payee, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		delete(c.retry, p)
		return
	case c.closed || c.retrying[p] || errors.Is(err, ErrChannelClosed):
		return
	}
	wait := c.retry[p]
	if wait == 0 {
		wait = min(DefaultRetryMin, c.cfg.WatchInterval)
	}
	c.retry[p] = min(2*wait, c.cfg.WatchInterval)
	c.retrying[p] = true
	time.AfterFunc(wait, func() {
		c.mu.Lock()
		delete(c.retrying, p)
		c.mu.Unlock()
		c.queueClaim(p)
	})
}

// claimLogged claims p with a minute's timeout and logs the outcome.
func (c *Collector) claimLogged(p *Payee) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Claim(ctx, p); err != nil {
		c.log.Error("claiming", "channel", p.Address().String(), "err", err)
		return fmt.Errorf("claiming %s: %w", p.Address(), err)
	}
	c.log.Info("claimed", "channel", p.Address().String(), "claimed", p.Claimed())
	return nil
}

// Close stops the watch, waits for queued claims, claims every channel with something unclaimed, as
// a clean stop must, and closes the ends it opened. A second Close does nothing.
func (c *Collector) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.stopWatch()
	<-c.watchDone
	c.claimsWG.Wait()
	var errs []error
	for _, p := range c.Channels() {
		if p.Unclaimed() > 0 {
			errs = append(errs, c.claimLogged(p))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := range c.owned {
		p.Close()
	}
	return errors.Join(errs...)
}

// ChannelsOf counts the channels account pays through: those open, and those seen closing or closed.
func (c *Collector) ChannelsOf(account string) (open, closing int) {
	c.mu.Lock()
	chans := append([]*Payee(nil), c.accounts[account]...)
	c.mu.Unlock()
	for _, p := range chans {
		if c.watch.IsClosing(p.Address().String()) {
			closing++
		} else {
			open++
		}
	}
	return open, closing
}
