package node

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cocoon-go/cocoon/internal/serve"
	"github.com/cocoon-go/cocoon/metrics"
)

// Ops is what a node serves its operator besides its API: Prometheus
// metrics at /metrics and a health check at /healthz, and optionally Go's
// profiles.
type Ops struct {
	// Metrics, if set, is the address of a listener of its own for
	// /metrics and /healthz, to keep them off the role's public port.
	// Empty: a proxy serves them on its client listener, a client on its
	// OpenAI address, and a worker (which has no listener) not at all.
	Metrics string `json:"metrics,omitempty"`
	// Pprof, if set, is the address of a net/http/pprof listener; it must
	// be loopback unless PprofRemote.
	Pprof       string `json:"pprof,omitempty"`
	PprofRemote bool   `json:"pprof_remote,omitempty"`
	// Registry, if set, is where the role's metrics are registered and
	// what is served: `cocoon up` shares one among its roles. Nil: one of
	// the node's own.
	Registry *prometheus.Registry `json:"-"`
}

// opsServer is a node's operator surface, running.
type opsServer struct {
	reg *prometheus.Registry
	// mux serves /metrics and /healthz; the node mounts it on its own
	// listener when there is no separate one.
	mux  *http.ServeMux
	own  bool   // served on a listener of its own
	addr string // that listener's address
	lns  []net.Listener
}

// registry is where the role's metrics go: cfg.Registry or a new one.
func (cfg Ops) registry() *prometheus.Registry {
	if cfg.Registry != nil {
		return cfg.Registry
	}
	return metrics.NewRegistry()
}

// startOps serves reg and health (read at each /healthz) as cfg asks.
func startOps(cfg Ops, reg *prometheus.Registry, health func() metrics.Health, log *slog.Logger) (*opsServer, error) {
	o := &opsServer{reg: reg, mux: http.NewServeMux()}
	o.mux.Handle("GET /metrics", metrics.Handler(o.reg))
	o.mux.Handle("GET /healthz", metrics.HealthHandler(health))
	if cfg.Metrics != "" {
		lim := serve.DefaultLimits()
		ln, err := serve.Listen(cfg.Metrics, lim)
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		o.lns, o.own, o.addr = append(o.lns, ln), true, ln.Addr().String()
		go serve.Server(o.mux, lim, log).Serve(ln)
		log.Info("metrics listening", "addr", ln.Addr().String())
	}
	if cfg.Pprof != "" {
		ln, err := serve.Pprof(cfg.Pprof, cfg.PprofRemote, log)
		if err != nil {
			o.close()
			return nil, err
		}
		o.lns = append(o.lns, ln)
	}
	return o, nil
}

// at is where /metrics and /healthz are served: on their own listener,
// or else on the role's, at roleAddr.
func (o *opsServer) at(roleAddr string) string {
	if o.own {
		return o.addr
	}
	return roleAddr
}

// mount returns api with /metrics and /healthz beside it, unless they are
// served on a listener of their own.
func (o *opsServer) mount(api http.Handler) http.Handler {
	if o.own {
		return api
	}
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.Handle("GET /metrics", o.mux)
	mux.Handle("GET /healthz", o.mux)
	return mux
}

// close stops the listeners.
func (o *opsServer) close() {
	for _, ln := range o.lns {
		ln.Close()
	}
}
