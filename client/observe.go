package client

import "github.com/cocoon-go/cocoon/metrics"

// WithMetrics makes the client count what an operator watches on m: the
// completions it serves by outcome, their latency and tokens, the receipts
// it refuses, and the vouchers it sends.
func WithMetrics(m *metrics.Client) Option {
	return func(c *Client) { c.metrics = m }
}
