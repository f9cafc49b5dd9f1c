package proxy

import "github.com/cocoon-go/cocoon/metrics"

// WithMetrics makes the proxy count what an operator watches on m: its
// requests by outcome, the workers it admits and holds, the receipts it
// refuses, and its vouchers and claims.
func WithMetrics(m *metrics.Proxy) Option {
	return func(p *Proxy) error {
		p.metrics = m
		m.Workers(p.Workers)
		return nil
	}
}
