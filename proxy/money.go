package proxy

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/wire"
)

// Payments connects a proxy to its money: a payments.Collector for the
// channels its clients pay it through (an account is a client's key, hex,
// the key that signs both its requests and its vouchers), a payments.Stream
// per worker it pays (by the worker's payout wallet address), and the
// wallet that claims and opens channels, one send at a time.
type Payments struct {
	Chain  chain.Chain // nil: Wallet.Chain()
	Wallet *chain.Wallet
	// Clients and Workers are channels known from the start (`cocoon up`
	// opens them); the caller closes them after the proxy. Others are found
	// as they come: a client channel from its first voucher, a worker
	// channel when a worker with a payout address connects (opened with
	// WorkerDeposit if there is none).
	Clients []*payments.Payee
	Workers map[string]*payments.Payer
	// Dir keeps the ends of channels found later; "" finds none.
	Dir string
	// VoucherKey signs the proxy's vouchers on channels it opens to workers.
	VoucherKey ed25519.PrivateKey
	// WorkerDeposit is what a channel to a new worker is opened with; 0
	// opens none.
	WorkerDeposit uint64
	// WorkerCloseDelay is the close delay of the channels the proxy opens to
	// workers: the root's workerCloseDelay. 0: payments.DefaultMinCloseDelay.
	WorkerCloseDelay time.Duration
	// MinCloseDelay refuses client channels that close sooner: the root's
	// clientCloseDelay. 0: payments.DefaultMinCloseDelay.
	MinCloseDelay time.Duration
	// WatchInterval is how often the state of each client channel is read,
	// to claim at once on any whose client starts a close (see
	// payments.Watcher); 0: payments.DefaultWatchInterval.
	WatchInterval time.Duration
}

// money is the proxy's side of its payment channels.
type money struct {
	*Payments
	wallet  *payments.Wallet
	collect *payments.Collector // client channels

	mu      sync.Mutex
	payouts map[string]*payments.Stream // by worker payout address
	owned   []*payments.Payer           // worker channels the proxy opened, closed by settle
	unpaid  map[string]uint64           // owed to workers whose channel is being opened
	opening map[string]bool
	opens   sync.WaitGroup // channels being opened; none starts once closed
	closed  bool           // settle has begun
}

// Option is a choice made when a Proxy is built.
type Option func(*Proxy) error

// WithPayments makes the proxy paid through client channels and paying
// workers through worker channels from its first request on: there is no
// moment at which it serves unpaid.
func WithPayments(pm *Payments) Option {
	return func(p *Proxy) error {
		p.pending = pm
		return nil
	}
}

// payWith sets up the proxy's payments; New calls it before anything is served.
func (p *Proxy) payWith(pm *Payments) error {
	if pm.Chain == nil {
		pm.Chain = pm.Wallet.Chain()
	}
	m := &money{Payments: pm, wallet: payments.NewWallet(pm.Wallet), payouts: map[string]*payments.Stream{},
		unpaid: map[string]uint64{}, opening: map[string]bool{}}
	var err error
	m.collect, err = payments.NewCollector(payments.CollectorConfig{Wallet: m.wallet, Chain: pm.Chain, Dir: pm.Dir,
		MinCloseDelay: pm.MinCloseDelay, ClaimThreshold: p.cfg.ClaimThreshold, WatchInterval: pm.WatchInterval,
		Log: p.log.With("collecting", "client channels"), OnVoucher: p.metrics.VoucherReceived, OnClaim: p.metrics.Claimed})
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	for _, ch := range pm.Clients {
		if err := m.collect.Add(ch); err != nil {
			m.collect.Close()
			return fmt.Errorf("proxy: %w", err)
		}
	}
	p.money = m
	for addr, payer := range pm.Workers {
		p.addPayout(addr, payer)
	}
	return nil
}

// ClosingChannels lists the client channels the proxy has seen their clients
// start closing, with what is left to claim on each; nil for a proxy that
// takes no payments.
func (p *Proxy) ClosingChannels() []payments.ClosingChannel {
	if p.money == nil {
		return nil
	}
	return p.money.collect.Closing()
}

// Covered is what client (its key, hex) has paid by voucher over all its
// channels, and the unspent deposit of those still open; see
// payments.Collector.Covered. Zero for a proxy that takes no payments.
func (p *Proxy) Covered(client string) (paid, available uint64) {
	if p.money == nil {
		return 0, 0
	}
	return p.money.collect.Covered(client)
}

// paidBy is what the newest vouchers of client's channels cover.
func (p *Proxy) paidBy(client string) uint64 {
	paid, _ := p.Covered(client)
	return paid
}

// checkChannelOpen refuses a client whose every channel its watch has seen
// closing: what it would be served on credit from now on could be taken
// back when the closes finish.
func (p *Proxy) checkChannelOpen(client string) error {
	if p.money == nil {
		return nil
	}
	if open, closing := p.money.collect.ChannelsOf(client); open == 0 && closing > 0 {
		return fmt.Errorf("your payment channel is closing: open a new channel to keep using this proxy")
	}
	return nil
}

// serveVoucher takes a client's newest voucher.
func (p *Proxy) serveVoucher(rw http.ResponseWriter, r *http.Request) {
	if p.money == nil {
		api.WriteError(rw, api.Errorf(http.StatusNotFound, api.TypeNotFound, "no_payments", "this proxy takes no payments"))
		return
	}
	p.money.collect.ServeHTTP(rw, r)
}

// payout is the wallet the worker on w is paid to, as its newest hello says.
func (w *workerConn) payout() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hello.Payout
}

// addPayout starts paying the worker at addr through payer.
func (p *Proxy) addPayout(addr string, payer *payments.Payer) {
	s := payments.NewStream(payer, payments.StreamConfig{Post: p.postToWorker(addr), Chain: p.money.Chain,
		Log: p.log.With("paying", addr)})
	m := p.money
	m.mu.Lock()
	m.payouts[addr] = s
	owed := m.unpaid[addr]
	delete(m.unpaid, addr)
	m.mu.Unlock()
	s.Add(owed)
}

// postToWorker posts vouchers to the worker paid to addr, over whichever
// link it has now.
func (p *Proxy) postToWorker(addr string) payments.Post {
	return func(ctx context.Context, v payments.VoucherPost) error {
		w := p.workerByPayout(addr)
		if w == nil {
			return fmt.Errorf("%w: worker %s is not connected", payments.ErrPayeeAway, addr)
		}
		err := payments.PostTo(w.cc, "https://worker"+wire.PathVouchers)(ctx, v)
		p.metrics.VoucherSent(err)
		return err
	}
}

// payWorker pays amount to the worker on w through its channel.
func (p *Proxy) payWorker(w *workerConn, amount uint64) {
	m := p.money
	payout := w.payout()
	if m == nil || amount == 0 || payout == "" {
		return
	}
	m.mu.Lock()
	s := m.payouts[payout]
	if s == nil {
		// Its channel is being opened; the amount goes with the first voucher.
		m.unpaid[payout] += amount
	}
	m.mu.Unlock()
	if s != nil {
		s.Add(amount)
	}
}

// payoutFor makes sure the proxy can pay the worker on w: it re-sends the
// newest voucher of the worker's channel (the last may have been lost with a
// previous link), or opens a channel to a new worker.
func (p *Proxy) payoutFor(w *workerConn) {
	m := p.money
	addr := w.payout()
	if m == nil || addr == "" {
		return
	}
	m.mu.Lock()
	s, opening := m.payouts[addr], m.opening[addr]
	open := s == nil && !opening && !m.closed && m.WorkerDeposit > 0 && m.Dir != ""
	if open {
		m.opening[addr] = true
		m.opens.Add(1)
	}
	m.mu.Unlock()
	if s != nil {
		s.Resend()
	}
	if !open {
		return
	}
	go func() {
		defer m.opens.Done()
		defer func() {
			m.mu.Lock()
			delete(m.opening, addr)
			m.mu.Unlock()
		}()
		payer, err := p.openPayout(w, addr)
		if err != nil {
			p.log.Error("opening a channel to worker", "worker", w.name, "err", err)
			return
		}
		m.mu.Lock()
		m.owned = append(m.owned, payer)
		m.mu.Unlock()
		p.log.Info("channel to worker open", "worker", w.name, "channel", payer.Address().String(), "deposit", payer.Deposit())
		p.addPayout(addr, payer)
	}()
}

// openPayout opens or resumes the proxy's channel to the worker on w, paid
// to addr: the first one still open, or a new one, as for every payer.
func (p *Proxy) openPayout(w *workerConn, addr string) (*payments.Payer, error) {
	m := p.money
	payee, err := address.ParseAddr(addr)
	if err != nil {
		return nil, fmt.Errorf("worker's payout address: %w", err)
	}
	w.mu.Lock()
	payeeKey := w.verified.Bundle.SigningKey
	w.mu.Unlock()
	delay := m.WorkerCloseDelay
	if delay == 0 {
		delay = payments.DefaultMinCloseDelay
	}
	cfg := contracts.ChannelConfig{Payer: m.Wallet.Address(), Payee: payee,
		PayerKey: m.VoucherKey.Public().(ed25519.PublicKey), PayeeKey: payeeKey, CloseDelay: delay}
	var payer *payments.Payer
	err = m.wallet.Do(func(cw *chain.Wallet) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		payer, _, err = payments.OpenOrResume(ctx, cw, cfg, m.VoucherKey, m.Dir, m.WorkerDeposit)
		return err
	})
	return payer, err
}

// workerByPayout finds the connected worker paid to addr.
func (p *Proxy) workerByPayout(addr string) *workerConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.workers {
		if w.hello.Payout == addr {
			return w
		}
	}
	return nil
}

// payeeInfo is what a client needs to open a channel to this proxy.
func (p *Proxy) payeeInfo() *wire.Payee {
	if p.money == nil || p.money.Dir == "" {
		return nil
	}
	return &wire.Payee{Address: p.money.Wallet.Address().String(), Key: p.money.VoucherKey.Public().(ed25519.PublicKey)}
}

// Flush waits until what the proxy owes its workers so far is in vouchers
// that were posted to them, and says what is still owed.
func (p *Proxy) Flush() error {
	m := p.money
	if m == nil {
		return nil
	}
	var errs []error
	for _, s := range m.streams() {
		errs = append(errs, s.Flush())
	}
	return errors.Join(errs...)
}

// streams lists the payouts' streams.
func (m *money) streams() []*payments.Stream {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*payments.Stream, 0, len(m.payouts))
	for _, s := range m.payouts {
		out = append(out, s)
	}
	return out
}

// settle delivers the newest vouchers to workers, claims every client
// channel with something unclaimed, as a clean stop must, and closes the
// channel ends the proxy opened.
func (p *Proxy) settle() error {
	m := p.money
	if m == nil {
		return nil
	}
	// No channel starts opening from now on, so Wait cannot race an Add.
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.opens.Wait()
	var errs []error
	for _, s := range m.streams() {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
			p.log.Error("stopping with a worker still owed", "err", err)
		}
	}
	errs = append(errs, m.collect.Close())
	m.mu.Lock()
	for _, payer := range m.owned {
		payer.Close()
	}
	m.mu.Unlock()
	return errors.Join(errs...)
}
