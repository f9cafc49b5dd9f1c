package worker

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/price"
)

// Payments connects a worker to its pay: a payments.Collector for the
// channels its proxies pay it through, the wallet that claims them, and the
// worker's own books of what each proxy owes it (see books).
type Payments struct {
	Wallet *chain.Wallet
	// Channel is a channel a proxy pays through, if known from the start
	// (`cocoon up` opens it); the caller closes it after the worker. Its
	// payer is taken to be the proxy pinned by Config.ProxyPin. Others
	// are read from Chain when a proxy's first voucher arrives, and their
	// ends kept in Dir.
	Channel *payments.Payee
	Chain   chain.Chain // nil: Wallet.Chain()
	Dir     string
	// Journal is the file the worker keeps its books in: every receipt it
	// signed, by proxy, with what the proxy owes for it. Required.
	Journal string
	// ProxyCredit is the most a proxy may owe the worker: its unpaid
	// receipts with the worst case of its requests in flight. A proxy
	// paying through a channel gets no more than the channel's unspent
	// deposit. 0: DefaultProxyCredit.
	ProxyCredit uint64
	// WorkerFee is what a proxy pays the worker per token, with the
	// answer's multipliers: the root contract's worker_fee. 0: the cost
	// less at most MaxProxyFeeBPS.
	WorkerFee uint64
	// MaxProxyFeeBPS is the largest share of each cost, in 1/10000, the
	// worker lets a proxy keep when WorkerFee is 0. 0: DefaultMaxProxyFeeBPS.
	MaxProxyFeeBPS uint64
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
}

// money is the worker's side of its payment channels.
type money struct {
	*Payments
	collect *payments.Collector
	books   *books
}

// Option is a choice made when a Worker is built.
type Option func(*Worker) error

// WithPayments makes the worker announce pm's wallet as its payout address,
// book what each proxy owes it and refuse a proxy that does not pay, and
// claim what its proxies' vouchers cover: past the threshold, at once if a
// proxy starts closing its channel, and on a clean stop. The channels are
// watched from now until Run returns.
func WithPayments(pm *Payments) Option {
	return func(w *Worker) error {
		w.pending = pm
		return nil
	}
}

// payWith sets up the worker's payments; New calls it before anything is served.
func (w *Worker) payWith(pm *Payments) error {
	if pm.Journal == "" {
		return errors.New("worker: payments need a journal for the worker's books")
	}
	c, err := payments.NewCollector(payments.CollectorConfig{Wallet: payments.NewWallet(pm.Wallet), Chain: pm.Chain,
		Dir: pm.Dir, MinCloseDelay: pm.MinCloseDelay, ClaimThreshold: pm.ClaimThreshold, WatchInterval: pm.WatchInterval,
		Log: w.log.With("collecting", "proxy channels"), OnVoucher: w.metrics.VoucherReceived, OnClaim: w.metrics.Claimed})
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	credit := pm.ProxyCredit
	if credit == 0 {
		credit = DefaultProxyCredit
	}
	feeBPS := pm.MaxProxyFeeBPS
	if feeBPS == 0 {
		feeBPS = DefaultMaxProxyFeeBPS
	}
	b, err := openBooks(pm.Journal, c, price.Split{WorkerFee: pm.WorkerFee, FeeBPS: feeBPS}, credit)
	if err != nil {
		c.Close()
		return err
	}
	fail := func(err error) error {
		c.Close()
		b.journal.Close()
		return fmt.Errorf("worker: %w", err)
	}
	if pm.Channel != nil {
		if err := c.Add(pm.Channel); err != nil {
			return fail(err)
		}
		if w.cfg.ProxyPin != "" {
			if err := b.bind(strings.ToLower(w.cfg.ProxyPin), hex.EncodeToString(pm.Channel.Config().PayerKey)); err != nil {
				return fail(err)
			}
		}
	}
	w.money = &money{Payments: pm, collect: c, books: b}
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

// serveVoucher takes a proxy's newest voucher, and learns from it which
// account pays for the proxy on this connection (see books).
func (w *Worker) serveVoucher(rw http.ResponseWriter, r *http.Request) {
	if w.money == nil {
		api.WriteError(rw, api.Errorf(http.StatusNotFound, api.TypeNotFound, "no_payments", "this worker takes no payments"))
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, payments.MaxVoucherPost))
	if err != nil {
		api.WriteError(rw, api.BadRequest("", "reading voucher: "+err.Error()))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	w.money.collect.ServeHTTP(rw, r)
	if post, err := payments.ParseVoucherPost(bytes.NewReader(raw)); err == nil {
		if err := w.money.books.bindVoucher(proxyOf(r), post.Channel, post.Voucher); err != nil {
			w.log.Warn("a voucher for another proxy's account", "err", err)
		}
	}
}

// claim is the settlement of a clean stop (Run calls it as it returns): it
// stops watching, claims whatever the newest vouchers cover, and closes the
// books.
func (w *Worker) claim() {
	if err := w.money.collect.Close(); err != nil {
		w.log.Error("claiming pay", "err", err)
	}
	if err := w.money.books.journal.Close(); err != nil {
		w.log.Error("closing the books", "err", err)
	}
}
