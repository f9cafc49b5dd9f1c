package worker

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/wire"
)

// Payments connects a worker to its pay: the payee end of the channel its
// proxy pays it through, and the wallet that claims it.
type Payments struct {
	Wallet  *chain.Wallet
	Channel *payments.Payee
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
	post, err := wire.ParseVoucherPost(r.Body)
	if err != nil {
		api.WriteError(rw, api.BadRequest("", err.Error()))
		return
	}
	if w.money == nil || w.money.Channel.Address().String() != post.Channel {
		api.WriteError(rw, api.Errorf(http.StatusNotFound, api.TypeNotFound, "unknown_channel", "this worker is not paid through channel %s", post.Channel))
		return
	}
	ch := w.money.Channel
	if err := ch.Accept(post.Voucher); err != nil && !errors.Is(err, payments.ErrStale) {
		api.WriteError(rw, api.Errorf(http.StatusBadRequest, api.TypeInvalidRequest, "bad_voucher", "%v", err))
		return
	}
	if ch.ShouldClaim(w.money.ClaimThreshold) {
		go w.claim()
	}
	rw.WriteHeader(http.StatusNoContent)
}

// claim sends the newest voucher to the channel; claims go one at a time.
func (w *Worker) claim() {
	w.claimMu.Lock()
	defer w.claimMu.Unlock()
	ch := w.money.Channel
	if ch.Unclaimed() == 0 {
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
