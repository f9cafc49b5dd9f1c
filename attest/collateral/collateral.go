// Package collateral fetches attestation collateral over HTTPS (Intel PCS or
// PCCS responses, AMD KDS certificates) and keeps it in an on-disk cache, so
// that a verifier keeps working when the network does not.
//
// A [Getter] serves each URL from its cache directory until the entry
// expires, then fetches it again. When is decided per kind of collateral by
// an [ExpiryFunc] (for Intel's TCB info its nextUpdate, for a certificate its
// NotAfter), falling back to [Options.MaxAge].
//
// When a refetch fails (network down, server error, a response the
// ExpiryFunc refuses) and an entry exists, the Getter serves the stale entry
// rather than failing. This is safe: every piece of collateral is signed by
// its vendor and carries its own validity (nextUpdate, NotAfter), which the
// verifier checks against its own clock. Stale bytes therefore keep a
// machine that went offline verifying only until the collateral itself
// expires; they never make expired collateral pass. The same holds in
// offline mode (no HTTP client), where only the cache is read.
//
// Adapters give the Getter the interfaces of go-tdx-guest ([TDXGetter]) and
// go-sev-guest ([SEVGetter]).
package collateral

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cocoon-go/cocoon/internal/atomicfile"
)

// Limits and defaults.
const (
	MaxBodySize    = 1 << 20          // bytes of a response body; larger responses are refused
	DefaultMaxAge  = 24 * time.Hour   // how long an entry lives when its ExpiryFunc gives no time
	DefaultTimeout = 30 * time.Second // per request, whatever the client's own timeout
)

// Errors callers may branch on.
var (
	// ErrNotCached means the Getter is offline (no HTTP client) and has no
	// entry for the URL, fresh or stale.
	ErrNotCached = errors.New("collateral: not in cache (offline)")
	// ErrTooLarge means a response body exceeded MaxBodySize.
	ErrTooLarge = errors.New("collateral: response too large")
)

// StatusError is a response whose status was not 200 OK.
type StatusError struct {
	URL    string
	Status string // e.g. "404 Not Found"
	Code   int
	Body   string // the start of the body, for the server's explanation
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("collateral: GET %s: %s: %q", e.URL, e.Status, e.Body)
}

// ExpiryFunc tells when a response stops being served from the cache, from
// the collateral it carries. A zero time means it does not say: the entry
// then lives for Options.MaxAge. An error means the response is not
// collateral of the expected kind; it is neither cached nor returned.
type ExpiryFunc func(url string, header http.Header, body []byte) (time.Time, error)

// Options configure a Getter.
type Options struct {
	// Client fetches responses; nil makes the Getter offline: it serves
	// the cache, stale entries included, and fetches nothing. Its timeout
	// applies along with Timeout.
	Client *http.Client
	// Timeout bounds each request; zero means DefaultTimeout.
	Timeout time.Duration
	// Expiry tells when an entry expires; nil means MaxAge for every entry.
	Expiry ExpiryFunc
	// MaxAge is how long an entry lives when Expiry gives no time; zero
	// means DefaultMaxAge.
	MaxAge time.Duration
	// Headers are the response headers kept with the body (such as the
	// issuer chains Intel PCS sends), in any case; others are dropped.
	Headers []string
	// Now is the clock deciding expiry; nil means time.Now.
	Now func() time.Time
	// Log, if not nil, receives a warning when a stale entry is served or
	// the cache cannot be written or read.
	Log *slog.Logger
}

// Response is a cached or fetched response.
type Response struct {
	URL       string
	Header    http.Header // only the headers named in Options.Headers
	Body      []byte
	FetchedAt time.Time
	ExpiresAt time.Time
	// Stale is set when the entry had expired and could not be fetched
	// again, so it is served as it was.
	Stale bool
}

// Getter fetches URLs through an HTTP client and keeps the responses in a
// directory, one file per URL. It is safe for concurrent use; concurrent
// misses of one URL may each fetch it, and the last write wins.
type Getter struct {
	dir     string
	opts    Options
	headers []string // canonical names
}

// New returns a Getter caching in dir, which it creates if needed.
func New(dir string, opts Options) (*Getter, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("collateral: cache directory: %w", err)
	}
	g := &Getter{dir: dir, opts: opts}
	if g.opts.Timeout <= 0 {
		g.opts.Timeout = DefaultTimeout
	}
	if g.opts.MaxAge <= 0 {
		g.opts.MaxAge = DefaultMaxAge
	}
	for _, h := range opts.Headers {
		g.headers = append(g.headers, http.CanonicalHeaderKey(h))
	}
	return g, nil
}

func (g *Getter) now() time.Time {
	if g.opts.Now != nil {
		return g.opts.Now()
	}
	return time.Now()
}

// Get is Fetch with a background context.
func (g *Getter) Get(url string) (*Response, error) {
	return g.Fetch(context.Background(), url)
}

// Fetch returns the response for url: the cached entry until it expires,
// then a fresh one, or the expired entry (Stale set) if fetching fails. With
// no entry to fall back on, a failed fetch is an error: a *StatusError for a
// status other than 200, ErrTooLarge, ErrNotCached when offline, or the
// transport's error.
func (g *Getter) Fetch(ctx context.Context, url string) (*Response, error) {
	now := g.now()
	cached := g.load(url)
	if cached != nil && now.Before(cached.ExpiresAt) {
		return cached, nil
	}
	var err error
	if g.opts.Client == nil {
		err = fmt.Errorf("%w: %s", ErrNotCached, url)
	} else {
		var fresh *Response
		if fresh, err = g.fetch(ctx, url, now); err == nil {
			g.store(fresh)
			return fresh, nil
		}
	}
	if cached == nil {
		return nil, err
	}
	cached.Stale = true
	if g.opts.Log != nil {
		g.opts.Log.Warn("collateral: serving expired cache entry", "url", url, "expired", cached.ExpiresAt, "err", err)
	}
	return cached, nil
}

func (g *Getter) fetch(ctx context.Context, url string, now time.Time) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, g.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("collateral: %w", err)
	}
	resp, err := g.opts.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("collateral: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return nil, &StatusError{URL: url, Status: resp.Status, Code: resp.StatusCode, Body: string(snippet)}
	}
	if resp.ContentLength > MaxBodySize {
		return nil, fmt.Errorf("%w: GET %s: Content-Length %d, limit %d", ErrTooLarge, url, resp.ContentLength, MaxBodySize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodySize+1))
	if err != nil {
		return nil, fmt.Errorf("collateral: GET %s: %w", url, err)
	}
	if len(body) > MaxBodySize {
		return nil, fmt.Errorf("%w: GET %s: more than %d bytes", ErrTooLarge, url, MaxBodySize)
	}
	r := &Response{URL: url, Header: make(http.Header), Body: body, FetchedAt: now}
	for _, h := range g.headers {
		if v := resp.Header.Values(h); len(v) > 0 {
			r.Header[h] = v
		}
	}
	if g.opts.Expiry != nil {
		if r.ExpiresAt, err = g.opts.Expiry(url, r.Header, body); err != nil {
			return nil, fmt.Errorf("collateral: GET %s: %w", url, err)
		}
	}
	if r.ExpiresAt.IsZero() {
		r.ExpiresAt = now.Add(g.opts.MaxAge)
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("collateral: GET %s: %w", url, err)
	}
	return r, nil
}

// path is the cache file of url: the hex SHA-256 of the URL, so that no
// URL can name a file outside the directory.
func (g *Getter) path(url string) string {
	sum := sha256.Sum256([]byte(url))
	return filepath.Join(g.dir, hex.EncodeToString(sum[:]))
}

// load returns the cached entry for url, or nil. A file that cannot be
// read, is oversized or corrupt, or holds another URL is a miss.
func (g *Getter) load(url string) *Response {
	f, err := os.Open(g.path(url))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			g.warn("collateral: cache unreadable", url, err)
		}
		return nil
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEntrySize+1))
	if err == nil && len(b) > maxEntrySize {
		err = fmt.Errorf("cache file over %d bytes", maxEntrySize)
	}
	var r *Response
	if err == nil {
		r, err = unmarshalEntry(b)
	}
	if err == nil && r.URL != url {
		err = fmt.Errorf("cache file holds %q", r.URL)
	}
	if err != nil {
		g.warn("collateral: ignoring corrupt cache entry", url, err)
		return nil
	}
	return r
}

func (g *Getter) store(r *Response) {
	if err := atomicfile.WriteFileNoSync(g.path(r.URL), marshalEntry(r), 0o600); err != nil {
		g.warn("collateral: cannot write cache", r.URL, err)
	}
}

func (g *Getter) warn(msg, url string, err error) {
	if g.opts.Log != nil {
		g.opts.Log.Warn(msg, "url", url, "dir", g.dir, "err", err)
	}
}

// TDX returns g as a getter for go-tdx-guest.
func (g *Getter) TDX() TDXGetter { return TDXGetter{g} }

// SEV returns g as a getter for go-sev-guest.
func (g *Getter) SEV() SEVGetter { return SEVGetter{g} }

// TDXGetter adapts a Getter to go-tdx-guest's trust.HTTPSGetter and
// trust.ContextHTTPSGetter, which want the response headers too.
type TDXGetter struct{ G *Getter }

// Get returns the headers and body of url.
func (t TDXGetter) Get(url string) (map[string][]string, []byte, error) {
	return t.GetContext(context.Background(), url)
}

// GetContext is Get with a context.
func (t TDXGetter) GetContext(ctx context.Context, url string) (map[string][]string, []byte, error) {
	r, err := t.G.Fetch(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	return r.Header, r.Body, nil
}

// SEVGetter adapts a Getter to go-sev-guest's trust.HTTPSGetter and
// trust.ContextHTTPSGetter.
type SEVGetter struct{ G *Getter }

// Get returns the body of url.
func (s SEVGetter) Get(url string) ([]byte, error) {
	return s.GetContext(context.Background(), url)
}

// GetContext is Get with a context.
func (s SEVGetter) GetContext(ctx context.Context, url string) ([]byte, error) {
	r, err := s.G.Fetch(ctx, url)
	if err != nil {
		return nil, err
	}
	return r.Body, nil
}
