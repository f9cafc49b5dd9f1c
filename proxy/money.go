package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/wire"
)

// Payments connects a proxy to its money: the payee ends of its clients'
// channels (keyed by the client's account key, hex) and the payer ends of its
// channels to workers (keyed by the worker's payout wallet address), and the
// wallet that claims.
type Payments struct {
	Chain   chain.Chain
	Wallet  *chain.Wallet
	Clients map[string]*payments.Payee
	Workers map[string]*payments.Payer
}

// PayWith makes the proxy paid through client channels and paying workers
// through worker channels. Call it before serving.
func (p *Proxy) PayWith(pm *Payments) {
	p.money = pm
	p.payouts = map[string]*payout{}
	for addr, payer := range pm.Workers {
		po := &payout{sender: &wire.VoucherSender{Channel: payer.Address().String()}}
		po.sender.Post = func(ctx context.Context, body []byte) error {
			w := p.workerByPayout(addr)
			if w == nil {
				return fmt.Errorf("worker %s is not connected", addr)
			}
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return wire.PostJSON(ctx, w.cc, "https://worker"+wire.PathVouchers, body)
		}
		po.sender.OnError = func(err error) { p.log.Warn("voucher to worker not delivered; the next one covers it", "payout", addr, "err", err) }
		po.stream = payments.NewStream(payer, po.sender.Send, func(amount uint64, err error) {
			p.log.Error("paying worker", "payout", addr, "amount", amount, "err", err)
		})
		p.payouts[addr] = po
	}
	p.walletOps = make(chan func(), 64)
	p.opsDone = make(chan struct{})
	go func() {
		defer close(p.opsDone)
		for op := range p.walletOps {
			op()
		}
	}()
}

// paidBy is what the newest voucher of client's channel covers.
func (p *Proxy) paidBy(client string) uint64 {
	if p.money == nil {
		return 0
	}
	if ch := p.money.Clients[client]; ch != nil {
		return ch.Total()
	}
	return 0
}

// serveVoucher takes a client's newest voucher.
func (p *Proxy) serveVoucher(rw http.ResponseWriter, r *http.Request) {
	post, err := wire.ParseVoucherPost(r.Body)
	if err != nil {
		api.WriteError(rw, api.BadRequest("", err.Error()))
		return
	}
	var ch *payments.Payee
	if p.money != nil {
		for _, c := range p.money.Clients {
			if c.Address().String() == post.Channel {
				ch = c
			}
		}
	}
	if ch == nil {
		api.WriteError(rw, api.Errorf(http.StatusNotFound, api.TypeNotFound, "unknown_channel", "no channel %s pays this proxy", post.Channel))
		return
	}
	if err := ch.Accept(post.Voucher); err != nil && !errors.Is(err, payments.ErrStale) {
		api.WriteError(rw, api.Errorf(http.StatusBadRequest, api.TypeInvalidRequest, "bad_voucher", "%v", err))
		return
	}
	if ch.ShouldClaim(p.cfg.ClaimThreshold) {
		p.claim(ch)
	}
	rw.WriteHeader(http.StatusNoContent)
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

// payout is how the proxy pays one worker: its channel's payments and the
// posting of their vouchers over whichever link the worker has now.
type payout struct {
	stream *payments.Stream
	sender *wire.VoucherSender
}

// payWorker pays amount to the worker on w through its channel.
func (p *Proxy) payWorker(w *workerConn, amount uint64) {
	if p.money == nil || amount == 0 {
		return
	}
	po := p.payouts[w.hello.Payout]
	if po == nil {
		p.log.Warn("no channel to pay worker", "worker", w.name, "payout", w.hello.Payout)
		return
	}
	po.stream.Add(amount)
}

// resendVoucher sends a newly connected worker the newest voucher of its
// channel: the last one may have been lost with its previous link.
func (p *Proxy) resendVoucher(w *workerConn) {
	if p.money == nil {
		return
	}
	if po, payer := p.payouts[w.hello.Payout], p.money.Workers[w.hello.Payout]; po != nil {
		if v, err := payer.Last(); err == nil {
			po.sender.Send(v)
		}
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

// flushPayouts waits until every worker's newest voucher has been posted.
func (p *Proxy) flushPayouts() {
	for _, po := range p.payouts {
		po.stream.Flush()
		po.sender.Flush()
	}
}

// settle claims every client channel with something unclaimed, as a clean
// stop must, and waits for the wallet's queue to drain.
func (p *Proxy) settle() error {
	if p.money == nil {
		return nil
	}
	var errs []error
	done := make(chan struct{})
	p.walletOps <- func() {
		defer close(done)
		for _, ch := range p.money.Clients {
			if ch.Unclaimed() == 0 {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			if err := ch.Claim(ctx, p.money.Wallet); err != nil {
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
