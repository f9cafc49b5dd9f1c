package client

import (
	"context"

	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/wire"
)

// WithPayments makes the client pay the proxy through payer's channel:
// after it has checked each worker's receipt, it adds the cost to a
// payments.Stream that signs cumulative vouchers and posts them to the
// proxy over the client's own (pinned) transport, off the answer's critical
// path. cfg.Post is set by the client; the rest of cfg is the caller's.
// Client.Close closes the stream; the caller closes payer after that.
func WithPayments(payer *payments.Payer, cfg payments.StreamConfig) Option {
	return func(c *Client) { c.pending = &pendingPayments{payer, cfg} }
}

// pendingPayments is what WithPayments chose.
type pendingPayments struct {
	payer *payments.Payer
	cfg   payments.StreamConfig
}

// payWith starts paying as pp says; New calls it once every option is applied.
func (c *Client) payWith(pp *pendingPayments) {
	cfg := pp.cfg
	post := payments.PostTo(c.http.Transport, c.cfg.Proxy+wire.PathVouchers)
	cfg.Post = func(ctx context.Context, v payments.VoucherPost) error {
		err := post(ctx, v)
		c.metrics.VoucherSent(err)
		return err
	}
	if cfg.Log == nil {
		cfg.Log = c.log.With("paying", "the proxy")
	}
	c.payments = payments.NewStream(pp.payer, cfg)
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

// Close pays what is owed, as far as it can (see Flush), and stops paying.
// Call it once the client's API has stopped serving.
func (c *Client) Close() error {
	if c.payments == nil {
		return nil
	}
	return c.payments.Close()
}
