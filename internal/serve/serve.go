// Package serve is the one place where Cocoon's HTTP listeners get their
// protections against slow, idle and greedy peers: a cap on open
// connections, a cap on requests in flight (answered 429 with Retry-After in
// OpenAI's error shape), a deadline for the headers, one for the whole
// request body, one for each write of the answer (moved forward at every
// write, so that a peer that stops reading is dropped while a long, healthy
// stream is not), an idle timeout and a bound on header size. The proxy's
// client listener, the client's OpenAI listener and a served local chain use
// it.
package serve

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"

	"github.com/cocoon-go/cocoon/api"
)

// Limits bound what one peer may hold of a server. A zero field leaves that
// protection off; DefaultLimits sets them all.
type Limits struct {
	// HeaderTimeout bounds the TLS handshake and reading a request's headers.
	HeaderTimeout time.Duration `json:"header_timeout,omitempty"`
	// BodyTimeout bounds reading a request's whole body, from when the
	// handler starts.
	BodyTimeout time.Duration `json:"body_timeout,omitempty"`
	// WriteTimeout bounds each write of an answer (and its flush): a
	// streamed answer may last as long as it keeps moving.
	WriteTimeout time.Duration `json:"write_timeout,omitempty"`
	// IdleTimeout is how long a kept-alive connection may wait for its next
	// request.
	IdleTimeout time.Duration `json:"idle_timeout,omitempty"`
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int `json:"max_header_bytes,omitempty"`
	// MaxConns bounds open connections; more wait to be accepted.
	MaxConns int `json:"max_conns,omitempty"`
	// MaxRequests bounds requests in flight; more are answered 429.
	MaxRequests int `json:"max_requests,omitempty"`
}

// DefaultLimits are the limits of every Cocoon listener unless configured:
// 10 s for headers, 60 s for a body (an 8 MiB envelope at 140 KiB/s), 30 s
// per write, 2 min idle, 64 KiB of headers, 1024 connections and 512
// requests in flight.
func DefaultLimits() Limits {
	return Limits{HeaderTimeout: 10 * time.Second, BodyTimeout: 60 * time.Second, WriteTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, MaxConns: 1024, MaxRequests: 512}
}

// RetryAfter is what a request refused for being one too many is told to
// wait, in seconds.
const RetryAfter = 1

// Listen listens on TCP addr, accepting at most l.MaxConns connections at a
// time.
func Listen(addr string, l Limits) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return Limit(ln, l), nil
}

// Limit returns ln accepting at most l.MaxConns connections at a time.
func Limit(ln net.Listener, l Limits) net.Listener {
	if l.MaxConns <= 0 {
		return ln
	}
	return netutil.LimitListener(ln, l.MaxConns)
}

// Server returns a server of h with the limits l. Serve it on a listener
// from Listen.
func Server(h http.Handler, l Limits, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.Default()
	}
	return &http.Server{
		Handler:           Handler(h, l),
		ReadHeaderTimeout: l.HeaderTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// Handler wraps h with the per-request limits of l: requests in flight,
// the body deadline and the per-write deadline. Server uses it; a server
// built elsewhere (httptest) can too.
//
// The body deadline is a read deadline set through http.ResponseController
// rather than http.Server.ReadTimeout: that one stays on an HTTP/1
// connection while the handler runs and, once it passes, cancels the
// request of a long answer.
func Handler(h http.Handler, l Limits) http.Handler {
	var slots chan struct{}
	if l.MaxRequests > 0 {
		slots = make(chan struct{}, l.MaxRequests)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slots != nil {
			select {
			case slots <- struct{}{}:
				defer func() { <-slots }()
			default:
				e := api.Errorf(http.StatusTooManyRequests, api.TypeRateLimit, api.CodeRateLimit,
					"this server has %d requests in flight, its most: try again in %d s", l.MaxRequests, RetryAfter)
				e.RetryAfter = RetryAfter
				api.WriteError(w, e)
				return
			}
		}
		rc := http.NewResponseController(w)
		if l.BodyTimeout > 0 && r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			rc.SetReadDeadline(time.Now().Add(l.BodyTimeout))
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
		}
		if l.WriteTimeout > 0 {
			// An HTTP/1 connection keeps the deadline of its last request.
			rc.SetWriteDeadline(time.Time{})
			dw := &deadlineWriter{ResponseWriter: w, rc: rc, timeout: l.WriteTimeout}
			defer dw.extend() // the server's last flush, after h returns
			w = dw
		}
		h.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the body's read deadline once the body is read: an
// HTTP/1 server then reads on in the background to notice a hang-up, and
// a deadline passing there would cancel the request.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// deadlineWriter moves the write deadline forward before each write and
// flush.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *deadlineWriter) extend() { w.rc.SetWriteDeadline(time.Now().Add(w.timeout)) }

func (w *deadlineWriter) WriteHeader(code int) {
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

func (w *deadlineWriter) Write(b []byte) (int, error) {
	w.extend()
	return w.ResponseWriter.Write(b)
}

// FlushError flushes what is buffered, within the write deadline.
func (w *deadlineWriter) FlushError() error {
	w.extend()
	return w.rc.Flush()
}

// Flush is FlushError for http.Flusher.
func (w *deadlineWriter) Flush() { w.FlushError() }

// Unwrap gives http.ResponseController the writer underneath.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
