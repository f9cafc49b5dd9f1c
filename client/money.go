package client

import (
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/wire"
)

// PayWith makes the client pay the proxy through payer's channel: after it
// has checked each worker's receipt, it adds the cost to a payments.Stream
// that signs cumulative vouchers and posts them to the proxy over the
// client's pinned transport, off the answer's critical path. cfg.Post is
// set here; the rest of cfg is the caller's. The caller closes the returned
// stream (after Flush) and then the payer. Call it before serving.
func (c *Client) PayWith(payer *payments.Payer, cfg payments.StreamConfig) *payments.Stream {
	cfg.Post = payments.PostTo(c.http.Transport, c.cfg.Proxy+wire.PathVouchers)
	if cfg.Log == nil {
		cfg.Log = c.log.With("paying", "the proxy")
	}
	c.payments = payments.NewStream(payer, cfg)
	return c.payments
}

// pay queues amount to be paid to the proxy: signed into a voucher (with
// others that arrive meanwhile) and posted, off the answer's path.
func (c *Client) pay(amount uint64) {
	if c.payments != nil {
		c.payments.Add(amount)
	}
}

// Flush waits until everything accepted so far is paid by a voucher posted
// to the proxy, and says what is still owed (payments.ErrOwed).
func (c *Client) Flush() error {
	if c.payments == nil {
		return nil
	}
	return c.payments.Flush()
}
