package client

import (
	"context"
	"time"

	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/wire"
)

// PayWith makes the client pay the proxy through a channel: after it has
// checked each worker's receipt, it signs a new cumulative voucher for the
// cost and posts it to the proxy, off the answer's critical path. Call it
// before serving.
func (c *Client) PayWith(payer *payments.Payer) {
	c.vouchers = &wire.VoucherSender{
		Channel: payer.Address().String(),
		Post: func(ctx context.Context, body []byte) error {
			ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			return wire.PostJSON(ctx, c.http.Transport, c.cfg.Proxy+wire.PathVouchers, body)
		},
		OnError: func(err error) { c.log.Warn("voucher not delivered to the proxy; the next one covers it", "err", err) },
	}
	c.payments = payments.NewStream(payer, c.vouchers.Send, func(amount uint64, err error) {
		c.log.Error("paying the proxy", "amount", amount, "err", err)
	})
	// The newest voucher may not have reached the proxy before a restart.
	if v, err := payer.Last(); err == nil {
		c.vouchers.Send(v)
	}
}

// pay queues amount to be paid to the proxy: signed into a voucher (with
// others that arrive meanwhile) and posted, off the answer's path.
func (c *Client) pay(amount uint64) {
	if c.payments != nil {
		c.payments.Add(amount)
	}
}

// Flush waits until everything accepted so far is paid by a voucher posted
// to the proxy.
func (c *Client) Flush() {
	if c.payments != nil {
		c.payments.Flush()
		c.vouchers.Flush()
	}
}
