package serve

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// ErrRemotePprof refuses a profiling listener reachable from other
// machines: a profile shows the process's code paths, goroutine stacks and
// memory, and taking one costs CPU, so it is for the operator on the
// machine unless explicitly allowed.
var ErrRemotePprof = errors.New("the pprof listener must be on loopback unless allowed explicitly")

// Pprof listens on addr and serves Go's profiles there (net/http/pprof,
// under /debug/pprof/). It refuses an address that is not loopback unless
// allowRemote. Close the listener to stop it.
func Pprof(addr string, allowRemote bool, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof: listening on %s: %w", addr, err)
	}
	if t, ok := ln.Addr().(*net.TCPAddr); !allowRemote && (!ok || !t.IP.IsLoopback()) {
		ln.Close()
		return nil, fmt.Errorf("pprof: %w: %s", ErrRemotePprof, addr)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or a trace writes only at its end.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	go srv.Serve(ln)
	log.Info("pprof listening", "addr", ln.Addr().String())
	return ln, nil
}
