package worker

import (
	"fmt"
	"net/http"
	"time"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/payments"
)

// Payments connects a worker to its pay: a payments.Collector for the
// channels its proxies pay it through, and the wallet that claims them.
type Payments struct {
	Wallet *chain.Wallet
	// Channel is a channel a proxy pays through, if known from the start
	// (`cocoon up` opens it); the caller closes it after the worker. Others
	// are read from Chain when a proxy's first voucher arrives, and their
	// ends kept in Dir.
	Channel *payments.Payee
	Chain   chain.Chain // nil: Wallet.Chain()
	Dir     string
	// ClaimThreshold is the unclaimed amount at which the worker claims on
	// chain; it also claims everything when it stops. 0: 1 TON.
	ClaimThreshold uint64
	// MinCloseDelay refuses proxy channels that close sooner: the root's
	// workerCloseDelay. 0: payments.DefaultMinCloseDelay.
	MinCloseDelay time.Duration
	// WatchInterval is how often each channel's state is read, to claim at
	// once if the proxy starts closing it (see payments.Watcher); 0:
	// payments.DefaultWatchInterval.
	WatchInterval time.Duration

	collect *payments.Collector
}

// PayWith makes the worker announce pm's wallet as its payout address and
// claim what its proxies' vouchers cover: past the threshold, at once if a
// proxy starts closing its channel, and on a clean stop. Call it before Run;
// the channels are watched from now until Run returns.
func (w *Worker) PayWith(pm *Payments) error {
	c, err := payments.NewCollector(payments.CollectorConfig{Wallet: payments.NewWallet(pm.Wallet), Chain: pm.Chain,
		Dir: pm.Dir, MinCloseDelay: pm.MinCloseDelay, ClaimThreshold: pm.ClaimThreshold, WatchInterval: pm.WatchInterval,
		Log: w.log.With("collecting", "proxy channels")})
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if pm.Channel != nil {
		if err := c.Add(pm.Channel); err != nil {
			c.Close()
			return fmt.Errorf("worker: %w", err)
		}
	}
	pm.collect = c
	w.money = pm
	return nil
}

// ClosingChannels lists the channels the worker has seen their proxies
// start closing, with what is left to claim; nil for a worker not paid.
func (w *Worker) ClosingChannels() []payments.ClosingChannel {
	if w.money == nil {
		return nil
	}
	return w.money.collect.Closing()
}

// Covered is what the proxy whose voucher key is account (hex) has paid
// this worker over all its channels, and the unspent deposit of those still
// open; see payments.Collector.Covered.
func (w *Worker) Covered(account string) (paid, available uint64) {
	if w.money == nil {
		return 0, 0
	}
	return w.money.collect.Covered(account)
}

// serveVoucher takes a proxy's newest voucher.
func (w *Worker) serveVoucher(rw http.ResponseWriter, r *http.Request) {
	if w.money == nil {
		api.WriteError(rw, api.Errorf(http.StatusNotFound, api.TypeNotFound, "no_payments", "this worker takes no payments"))
		return
	}
	w.money.collect.ServeHTTP(rw, r)
}

// claim is the settlement of a clean stop (Run calls it as it returns): it
// stops watching and claims whatever the newest vouchers cover.
func (w *Worker) claim() {
	if err := w.money.collect.Close(); err != nil {
		w.log.Error("claiming pay", "err", err)
	}
}
