package proxy

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/wire"
)

// Payments connects a proxy to its money: the payee ends of its clients'
// channels (keyed by the client's account key, hex) and the payer ends of its
// channels to workers (keyed by the worker's payout wallet address), and the
// wallet that claims and opens channels.
type Payments struct {
	Chain  chain.Chain
	Wallet *chain.Wallet
	// Clients and Workers are channels known from the start (`cocoon up`
	// opens them). Others are found as they come: a client channel when its
	// first voucher arrives, a worker channel when a worker with a payout
	// address connects (opened with WorkerDeposit if there is none).
	Clients map[string]*payments.Payee
	Workers map[string]*payments.Payer
	// Dir keeps the ends of channels found later; "" finds none.
	Dir string
	// VoucherKey signs the proxy's vouchers on channels it opens to workers.
	VoucherKey ed25519.PrivateKey
	// WorkerDeposit is what a channel to a new worker is opened with; 0
	// opens none.
	WorkerDeposit uint64
	// WatchInterval is how often the state of each client channel is read,
	// to claim at once on any whose client starts a close (see
	// payments.Watcher); 0: payments.DefaultWatchInterval.
	WatchInterval time.Duration
}

// money is the proxy's side of its payment channels.
type money struct {
	*Payments
	findMu  sync.Mutex // one channel discovery at a time
	mu      sync.Mutex
	byAddr  map[string]*payments.Payee // client channels by channel address
	payouts map[string]*payout         // by worker payout address
	unpaid  map[string]uint64          // owed to workers whose channel is being opened
	opening map[string]bool

	watch     *payments.Watcher // claims on client channels their clients are closing
	stopWatch context.CancelFunc
	watchDone chan struct{}
}

// payout is how the proxy pays one worker: its channel's payments and the
// posting of their vouchers over whichever link the worker has now.
type payout struct {
	payer  *payments.Payer
	stream *payments.Stream
	sender *wire.VoucherSender
}

// PayWith makes the proxy paid through client channels and paying workers
// through worker channels. Call it before serving.
func (p *Proxy) PayWith(pm *Payments) {
	m := &money{Payments: pm, byAddr: map[string]*payments.Payee{}, payouts: map[string]*payout{}, unpaid: map[string]uint64{}, opening: map[string]bool{}}
	if m.Clients == nil {
		m.Clients = map[string]*payments.Payee{}
	}
	for _, ch := range m.Clients {
		m.byAddr[ch.Address().String()] = ch
	}
	p.money = m
	for addr, payer := range pm.Workers {
		p.addPayout(addr, payer)
	}
	p.walletOps = make(chan func(), 64)
	p.opsDone = make(chan struct{})
	go func() {
		defer close(p.opsDone)
		for op := range p.walletOps {
			op()
		}
	}()
	p.watchClients()
}

// watchClients starts watching the client channels, from now until settle:
// a client that starts closing its channel gets every voucher it signed
// claimed before it can take its deposit back.
func (p *Proxy) watchClients() {
	m := p.money
	c := m.Chain
	if c == nil && m.Wallet != nil {
		c = m.Wallet.Chain()
	}
	if c == nil {
		return
	}
	m.watch = &payments.Watcher{Chain: c, Channels: m.clientChannels, Claim: p.claimNow,
		Interval: m.WatchInterval, Log: p.log.With("watching", "client channels")}
	ctx, cancel := context.WithCancel(context.Background())
	m.stopWatch, m.watchDone = cancel, make(chan struct{})
	go func() {
		defer close(m.watchDone)
		m.watch.Run(ctx)
	}()
}

// clientChannels lists the channels that pay the proxy.
func (m *money) clientChannels() []*payments.Payee {
	m.mu.Lock()
	defer m.mu.Unlock()
	chans := make([]*payments.Payee, 0, len(m.byAddr))
	for _, ch := range m.byAddr {
		chans = append(chans, ch)
	}
	return chans
}

// claimNow claims ch's newest voucher on the proxy's wallet, whose sends go
// one at a time, and waits for the outcome.
func (p *Proxy) claimNow(ctx context.Context, ch *payments.Payee) error {
	done := make(chan error, 1)
	op := func() {
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		done <- ch.Claim(ctx, p.money.Wallet)
	}
	select {
	case p.walletOps <- op:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ClosingChannels lists the client channels the proxy has seen their clients
// start closing, with what is left to claim on each; nil for a proxy that
// takes no payments.
func (p *Proxy) ClosingChannels() []payments.ClosingChannel {
	if p.money == nil || p.money.watch == nil {
		return nil
	}
	return p.money.watch.Closing()
}

// addPayout starts paying the worker at addr through payer.
func (p *Proxy) addPayout(addr string, payer *payments.Payer) {
	po := &payout{payer: payer, sender: &wire.VoucherSender{Channel: payer.Address().String()}}
	po.sender.Post = func(ctx context.Context, body []byte) error {
		w := p.workerByPayout(addr)
		if w == nil {
			return fmt.Errorf("worker %s is not connected", addr)
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return wire.PostJSON(ctx, w.cc, "https://worker"+wire.PathVouchers, body)
	}
	po.sender.OnError = func(err error) {
		p.log.Warn("voucher to worker not delivered; the next one covers it", "payout", addr, "err", err)
	}
	po.stream = payments.NewStream(payer, po.sender.Send, func(amount uint64, err error) {
		p.log.Error("paying worker", "payout", addr, "amount", amount, "err", err)
	})
	m := p.money
	m.mu.Lock()
	m.payouts[addr] = po
	owed := m.unpaid[addr]
	delete(m.unpaid, addr)
	m.mu.Unlock()
	if v, err := payer.Last(); err == nil {
		po.sender.Send(v)
	}
	po.stream.Add(owed)
}

// paidBy is what the newest voucher of client's channel covers.
func (p *Proxy) paidBy(client string) uint64 {
	if p.money == nil {
		return 0
	}
	p.money.mu.Lock()
	ch := p.money.Clients[client]
	p.money.mu.Unlock()
	if ch != nil {
		return ch.Total()
	}
	return 0
}

// checkChannelOpen refuses a client whose payer channel its watcher has seen
// closing: what it would be served on credit from now on could be taken
// back when the close finishes.
func (p *Proxy) checkChannelOpen(client string) error {
	m := p.money
	if m == nil || m.watch == nil {
		return nil
	}
	m.mu.Lock()
	ch := m.Clients[client]
	m.mu.Unlock()
	if ch != nil && m.watch.IsClosing(ch.Address().String()) {
		return fmt.Errorf("payment channel %s is closing: open a new channel to keep using this proxy", ch.Address())
	}
	return nil
}

// serveVoucher takes a client's newest voucher.
func (p *Proxy) serveVoucher(rw http.ResponseWriter, r *http.Request) {
	wire.ServeVoucher(rw, r, p.clientChannel, func(ch *payments.Payee) {
		if ch.ShouldClaim(p.cfg.ClaimThreshold) {
			p.claim(ch)
		}
	})
}

// clientChannel finds the channel at addr that pays this proxy, reading it
// from the chain the first time.
func (p *Proxy) clientChannel(ctx context.Context, addr string) (*payments.Payee, error) {
	m := p.money
	if m == nil {
		return nil, errors.New("this proxy takes no payments")
	}
	m.mu.Lock()
	ch := m.byAddr[addr]
	m.mu.Unlock()
	if ch != nil {
		return ch, nil
	}
	if m.Dir == "" {
		return nil, fmt.Errorf("no channel %s pays this proxy", addr)
	}
	// One discovery at a time, without holding up the books meanwhile.
	m.findMu.Lock()
	defer m.findMu.Unlock()
	m.mu.Lock()
	ch = m.byAddr[addr]
	m.mu.Unlock()
	if ch != nil {
		return ch, nil
	}
	ch, state, err := payments.FindPayee(ctx, m.Chain, m.Dir, addr, m.Wallet.Address())
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.byAddr[addr] = ch
	m.Clients[hex.EncodeToString(state.PayerKey)] = ch
	m.mu.Unlock()
	p.log.Info("client channel found", "channel", addr, "deposit", ch.Deposit())
	return ch, nil
}

// claim queues a claim of ch's newest voucher on the proxy's wallet, whose
// sends go one at a time.
func (p *Proxy) claim(ch *payments.Payee) {
	select {
	case p.walletOps <- func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := ch.Claim(ctx, p.money.Wallet); err != nil {
			p.log.Error("claiming client channel", "channel", ch.Address().String(), "err", err)
			return
		}
		p.log.Info("claimed client channel", "channel", ch.Address().String(), "claimed", ch.Claimed())
	}:
	default: // a claim is already queued; it will take the newest voucher
	}
}

// payout is the wallet the worker on w is paid to, as its newest hello says.
func (w *workerConn) payout() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hello.Payout
}

// payWorker pays amount to the worker on w through its channel.
func (p *Proxy) payWorker(w *workerConn, amount uint64) {
	m := p.money
	payout := w.payout()
	if m == nil || amount == 0 || payout == "" {
		return
	}
	m.mu.Lock()
	po := m.payouts[payout]
	if po == nil {
		// Its channel is being opened; the amount goes with the first voucher.
		m.unpaid[payout] += amount
	}
	m.mu.Unlock()
	if po != nil {
		po.stream.Add(amount)
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
	po, opening := m.payouts[addr], m.opening[addr]
	if po == nil && !opening && m.WorkerDeposit > 0 && m.Dir != "" {
		m.opening[addr] = true
	}
	m.mu.Unlock()
	if po != nil {
		if v, err := po.payer.Last(); err == nil {
			po.sender.Send(v)
		}
		return
	}
	if opening || m.WorkerDeposit == 0 || m.Dir == "" {
		return
	}
	payee, err := address.ParseAddr(addr)
	if err != nil {
		p.log.Warn("worker's payout address", "worker", w.name, "err", err)
		return
	}
	w.mu.Lock()
	payeeKey := w.verified.Bundle.SigningKey
	w.mu.Unlock()
	p.walletOps <- func() {
		defer func() {
			m.mu.Lock()
			delete(m.opening, addr)
			m.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// The first channel to this worker still open, or new: the proxy
		// may have closed an earlier one.
		cfg, _, err := payments.Usable(ctx, m.Chain, contracts.ChannelConfig{Payer: m.Wallet.Address(), Payee: payee,
			PayerKey: m.VoucherKey.Public().(ed25519.PublicKey), PayeeKey: payeeKey, CloseDelay: time.Hour}, m.Dir)
		if err != nil {
			p.log.Error("opening a channel to worker", "worker", w.name, "err", err)
			return
		}
		if _, err := payments.Open(ctx, m.Wallet, cfg, m.WorkerDeposit); err != nil && !errors.Is(err, payments.ErrAlreadyOpen) {
			p.log.Error("opening a channel to worker", "worker", w.name, "err", err)
			return
		}
		payer, err := payments.OpenPayer(m.Dir, cfg, m.VoucherKey)
		if err == nil {
			_, err = payer.Refresh(ctx, m.Chain)
		}
		if err != nil {
			p.log.Error("opening a channel to worker", "worker", w.name, "err", err)
			return
		}
		p.log.Info("channel to worker open", "worker", w.name, "channel", payer.Address().String(), "deposit", payer.Deposit())
		p.addPayout(addr, payer)
	}
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
// that have been posted to them.
func (p *Proxy) Flush() {
	m := p.money
	if m == nil {
		return
	}
	m.mu.Lock()
	var pos []*payout
	for _, po := range m.payouts {
		pos = append(pos, po)
	}
	m.mu.Unlock()
	for _, po := range pos {
		po.stream.Flush()
		po.sender.Flush()
	}
}

// settle delivers the newest vouchers to workers, claims every client
// channel with something unclaimed, as a clean stop must, and waits for the
// wallet's queue to drain.
func (p *Proxy) settle() error {
	m := p.money
	if m == nil {
		return nil
	}
	if m.watch != nil {
		m.stopWatch()
		<-m.watchDone
	}
	p.Flush()
	chans := m.clientChannels()
	var errs []error
	done := make(chan struct{})
	p.walletOps <- func() {
		defer close(done)
		for _, ch := range chans {
			if ch.Unclaimed() == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := ch.Claim(ctx, m.Wallet); err != nil {
				errs = append(errs, fmt.Errorf("claiming %s: %w", ch.Address(), err))
			}
			cancel()
		}
	}
	<-done
	close(p.walletOps)
	<-p.opsDone
	return errors.Join(errs...)
}
