package worker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/wire"
)

// Payments connects a worker to its pay: the payee end of the channel its
// proxy pays it through, and the wallet that claims it.
type Payments struct {
	Wallet *chain.Wallet
	// Channel is the channel the proxy pays through, if known from the
	// start (`cocoon up` opens it); otherwise it is read from Chain when the
	// proxy's first voucher arrives, and its end kept in Dir.
	Channel *payments.Payee
	Chain   chain.Chain
	Dir     string
	// ClaimThreshold is the unclaimed amount at which the worker claims on
	// chain; it also claims everything when it stops. 0: 1 TON.
	ClaimThreshold uint64
	// WatchInterval is how often the channel's state is read, to claim at
	// once if the proxy starts closing it (see payments.Watcher); 0:
	// payments.DefaultWatchInterval.
	WatchInterval time.Duration

	watch     *payments.Watcher
	stopWatch context.CancelFunc
	watchDone chan struct{}
}

// PayWith makes the worker announce pm's wallet as its payout address and
// claim what its proxy's vouchers cover: past the threshold, at once if the
// proxy starts closing the channel, and on a clean stop. Call it before Run;
// the channel is watched from now until Run returns.
func (w *Worker) PayWith(pm *Payments) {
	if pm.ClaimThreshold == 0 {
		pm.ClaimThreshold = 1_000_000_000
	}
	w.money = pm
	c := pm.Chain
	if c == nil {
		c = pm.Wallet.Chain()
	}
	pm.watch = &payments.Watcher{Chain: c, Channels: w.channels, Interval: pm.WatchInterval,
		Log: w.log.With("watching", "proxy channel"),
		Claim: func(ctx context.Context, ch *payments.Payee) error {
			w.claimMu.Lock()
			defer w.claimMu.Unlock()
			return ch.Claim(ctx, pm.Wallet)
		}}
	ctx, cancel := context.WithCancel(context.Background())
	pm.stopWatch, pm.watchDone = cancel, make(chan struct{})
	go func() {
		defer close(pm.watchDone)
		pm.watch.Run(ctx)
	}()
}

// channels lists the channel the worker is paid through, once known.
func (w *Worker) channels() []*payments.Payee {
	w.payMu.Lock()
	defer w.payMu.Unlock()
	if w.money.Channel == nil {
		return nil
	}
	return []*payments.Payee{w.money.Channel}
}

// ClosingChannels lists the worker's channel if the worker has seen its
// proxy start closing it, with what is left to claim; nil otherwise.
func (w *Worker) ClosingChannels() []payments.ClosingChannel {
	if w.money == nil {
		return nil
	}
	return w.money.watch.Closing()
}

// serveVoucher takes the proxy's newest voucher.
func (w *Worker) serveVoucher(rw http.ResponseWriter, r *http.Request) {
	wire.ServeVoucher(rw, r, w.channel, func(ch *payments.Payee) {
		if ch.ShouldClaim(w.money.ClaimThreshold) {
			go w.claimNewest()
		}
	})
}

// channel returns the worker's end of the channel at addr, reading the
// channel from the chain the first time: it must pay this worker's wallet.
func (w *Worker) channel(ctx context.Context, addr string) (*payments.Payee, error) {
	m := w.money
	if m == nil {
		return nil, errors.New("this worker takes no payments")
	}
	w.payMu.Lock()
	defer w.payMu.Unlock()
	if m.Channel != nil {
		if m.Channel.Address().String() == addr {
			return m.Channel, nil
		}
		return nil, fmt.Errorf("this worker is paid through channel %s, not %s", m.Channel.Address(), addr)
	}
	if m.Chain == nil || m.Dir == "" {
		return nil, fmt.Errorf("this worker is not paid through channel %s", addr)
	}
	ch, _, err := payments.FindPayee(ctx, m.Chain, m.Dir, addr, m.Wallet.Address())
	if err != nil {
		return nil, err
	}
	w.log.Info("paid through channel", "channel", addr, "deposit", ch.Deposit())
	m.Channel = ch
	return ch, nil
}

// claim is the settlement of a clean stop (Run calls it as it returns): it
// stops watching the channel and claims whatever the newest voucher covers.
func (w *Worker) claim() {
	w.money.stopWatch()
	<-w.money.watchDone
	w.claimNewest()
}

// claimNewest sends the newest voucher to the channel; claims go one at a time.
func (w *Worker) claimNewest() {
	w.claimMu.Lock()
	defer w.claimMu.Unlock()
	w.payMu.Lock()
	ch := w.money.Channel
	w.payMu.Unlock()
	if ch == nil || ch.Unclaimed() == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ch.Claim(ctx, w.money.Wallet); err != nil {
		w.log.Error("claiming pay", "channel", ch.Address().String(), "err", err)
		return
	}
	w.log.Info("claimed pay", "channel", ch.Address().String(), "claimed", ch.Claimed())
}
