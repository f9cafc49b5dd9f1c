package worker

import "github.com/cocoon-go/cocoon/metrics"

// WithMetrics makes the worker count what an operator watches on m: the
// requests it runs by outcome, its link to the proxy, and the vouchers
// and claims of its pay.
func WithMetrics(m *metrics.Worker) Option {
	return func(w *Worker) error {
		w.metrics = m
		return nil
	}
}

// Linked reports whether the worker's link to its proxy is up now.
func (w *Worker) Linked() bool { return w.linked.Load() }

// link notes the link to the proxy going up or down.
func (w *Worker) link(up bool) {
	w.linked.Store(up)
	w.metrics.Linked(up)
}
