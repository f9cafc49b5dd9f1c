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
}

// PayWith makes the worker announce pm's wallet as its payout address and
// claim what its proxy's vouchers cover. Call it before Run.
func (w *Worker) PayWith(pm *Payments) {
	if pm.ClaimThreshold == 0 {
		pm.ClaimThreshold = 1_000_000_000
	}
	w.money = pm
}

// serveVoucher takes the proxy's newest voucher.
func (w *Worker) serveVoucher(rw http.ResponseWriter, r *http.Request) {
	wire.ServeVoucher(rw, r, w.channel, func(ch *payments.Payee) {
		if ch.ShouldClaim(w.money.ClaimThreshold) {
			go w.claim()
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

// claim sends the newest voucher to the channel; claims go one at a time.
func (w *Worker) claim() {
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
