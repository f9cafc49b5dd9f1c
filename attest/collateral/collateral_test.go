package collateral

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sevtrust "github.com/google/go-sev-guest/verify/trust"
	tdxtrust "github.com/google/go-tdx-guest/verify/trust"
)

// The adapters fit both libraries, with and without a context.
var (
	_ tdxtrust.HTTPSGetter        = TDXGetter{}
	_ tdxtrust.ContextHTTPSGetter = TDXGetter{}
	_ sevtrust.HTTPSGetter        = SEVGetter{}
	_ sevtrust.ContextHTTPSGetter = SEVGetter{}
)

var t0 = time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)

// server counts requests and answers them with handler.
type server struct {
	*httptest.Server
	hits atomic.Int32
}

func newServer(t *testing.T, handler http.HandlerFunc) *server {
	s := new(server)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		handler(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func okHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Issuer-Chain", "chain of "+r.URL.Path)
	w.Header().Set("X-Dropped", "not kept")
	w.Write([]byte("body of " + r.URL.Path))
}

// clock is a settable clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newGetter(t *testing.T, dir string, client *http.Client, c *clock) *Getter {
	t.Helper()
	g, err := New(dir, Options{Client: client, Headers: []string{"issuer-chain"}, Now: c.now, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestCacheServesAfterServerCloses(t *testing.T) {
	s := newServer(t, okHandler)
	dir := t.TempDir()
	c := &clock{t0}
	g := newGetter(t, dir, s.Client(), c)
	url := s.URL + "/tcb?fmspc=00"
	r, err := g.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Body) != "body of /tcb" || r.Header.Get("Issuer-Chain") != "chain of /tcb" || r.Header.Get("X-Dropped") != "" || r.Stale {
		t.Fatalf("response %+v", r)
	}
	if !r.FetchedAt.Equal(t0) || !r.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("fetched %v, expires %v", r.FetchedAt, r.ExpiresAt)
	}
	s.Close()
	// A new Getter on the same directory: the entry comes from disk.
	g = newGetter(t, dir, s.Client(), c)
	h, body, err := g.TDX().Get(url)
	if err != nil {
		t.Fatalf("after the server closed: %v", err)
	}
	if string(body) != "body of /tcb" || h["Issuer-Chain"][0] != "chain of /tcb" {
		t.Fatalf("cached: header %v body %q", h, body)
	}
	if n := s.hits.Load(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestExpiryRefetchesAndStaleIfError(t *testing.T) {
	var fail atomic.Bool
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		okHandler(w, r)
	})
	c := &clock{t0}
	expiry := t0.Add(10 * time.Minute)
	g, err := New(t.TempDir(), Options{Client: s.Client(), Now: c.now, Expiry: func(string, http.Header, []byte) (time.Time, error) {
		return expiry, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	url := s.URL + "/crl"
	get := func() *Response {
		t.Helper()
		r, err := g.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := get(); !r.ExpiresAt.Equal(expiry) {
		t.Fatalf("ExpiresAt %v, want the ExpiryFunc's %v", r.ExpiresAt, expiry)
	}
	c.t = expiry.Add(-time.Second)
	get()
	if n := s.hits.Load(); n != 1 {
		t.Fatalf("%d requests before expiry, want 1", n)
	}
	c.t = expiry
	expiry = expiry.Add(time.Hour)
	if r := get(); r.Stale || !r.FetchedAt.Equal(c.t) {
		t.Fatalf("after expiry: %+v, want a fresh fetch", r)
	}
	if n := s.hits.Load(); n != 2 {
		t.Fatalf("%d requests after expiry, want 2", n)
	}

	fail.Store(true)
	c.t = expiry.Add(time.Minute)
	r := get()
	if !r.Stale || string(r.Body) != "body of /crl" {
		t.Fatalf("refetch failed: %+v, want the stale entry", r)
	}
	// Offline, the stale entry is served too.
	off := newGetter(t, g.dir, nil, c)
	if r, err := off.Get(url); err != nil || !r.Stale {
		t.Fatalf("offline: %+v, %v", r, err)
	}
	if _, err := off.Get(url + "?other"); !errors.Is(err, ErrNotCached) {
		t.Fatalf("offline miss: %v, want ErrNotCached", err)
	}
}

func TestExpiryFuncRefusal(t *testing.T) {
	s := newServer(t, okHandler)
	bad := errors.New("not a CRL")
	g, err := New(t.TempDir(), Options{Client: s.Client(), Expiry: func(string, http.Header, []byte) (time.Time, error) {
		return time.Time{}, bad
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Get(s.URL + "/crl"); !errors.Is(err, bad) {
		t.Fatalf("err = %v, want the ExpiryFunc's", err)
	}
	if entries, _ := os.ReadDir(g.dir); len(entries) != 0 {
		t.Fatalf("refused response cached: %v", entries)
	}
}

func TestRefusals(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Write(make([]byte, MaxBodySize+1))
		case "/big-declared":
			w.Header().Set("Content-Length", "2000000")
			w.WriteHeader(http.StatusOK)
		case "/redirect":
			http.Redirect(w, r, "/missing", http.StatusFound)
		default:
			http.Error(w, "no such FMSPC", http.StatusNotFound)
		}
	})
	g := newGetter(t, t.TempDir(), s.Client(), &clock{t0})
	for _, path := range []string{"/big", "/big-declared"} {
		if _, err := g.Get(s.URL + path); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: err = %v, want ErrTooLarge", path, err)
		}
	}
	for _, path := range []string{"/missing", "/redirect"} {
		_, err := g.Get(s.URL + path)
		var se *StatusError
		if !errors.As(err, &se) || se.Code != http.StatusNotFound || !strings.Contains(err.Error(), "404 Not Found") || !strings.Contains(err.Error(), "no such FMSPC") {
			t.Errorf("%s: err = %v, want a 404 StatusError with the body", path, err)
		}
	}
	if entries, _ := os.ReadDir(g.dir); len(entries) != 0 {
		t.Fatalf("refused responses cached: %v", entries)
	}
}

func TestCorruptCacheIsAMiss(t *testing.T) {
	s := newServer(t, okHandler)
	c := &clock{t0}
	g := newGetter(t, t.TempDir(), s.Client(), c)
	url, other := s.URL+"/a", s.URL+"/b"
	if _, err := g.Get(url); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(g.path(url))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"garbage":    []byte("not an entry"),
		"truncated":  good[:len(good)-1],
		"trailing":   append(append([]byte(nil), good...), 0),
		"oversized":  make([]byte, maxEntrySize+1),
		"other URL":  good, // written under other's name below
		"empty file": nil,
	} {
		target := url
		if name == "other URL" {
			target = other
		}
		if err := os.WriteFile(g.path(target), content, 0o600); err != nil {
			t.Fatal(err)
		}
		before := s.hits.Load()
		r, err := g.Get(target)
		if err != nil || r.Stale {
			t.Fatalf("%s: %+v, %v", name, r, err)
		}
		if s.hits.Load() != before+1 {
			t.Errorf("%s: served from the corrupt file", name)
		}
		offline := newGetter(t, g.dir, nil, c)
		if err := os.WriteFile(g.path(target), content, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := offline.Get(target); !errors.Is(err, ErrNotCached) {
			t.Errorf("%s offline: err = %v, want ErrNotCached", name, err)
		}
	}
}

func TestSEVAdapter(t *testing.T) {
	s := newServer(t, okHandler)
	g := newGetter(t, t.TempDir(), s.Client(), &clock{t0})
	body, err := g.SEV().Get(s.URL + "/vcek/v1/Milan/00")
	if err != nil || string(body) != "body of /vcek/v1/Milan/00" {
		t.Fatalf("%q, %v", body, err)
	}
}

func TestEntryRoundTrip(t *testing.T) {
	r := &Response{
		URL:       "https://example.com/x",
		Header:    http.Header{"A": {"1", "2"}, "B": {""}},
		Body:      []byte("body"),
		FetchedAt: t0,
		ExpiresAt: t0.Add(time.Hour),
	}
	got, err := unmarshalEntry(marshalEntry(r))
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != r.URL || string(got.Body) != "body" || !got.FetchedAt.Equal(t0) || !got.ExpiresAt.Equal(r.ExpiresAt) ||
		len(got.Header["A"]) != 2 || got.Header["A"][1] != "2" || len(got.Header["B"]) != 1 {
		t.Fatalf("round trip: %+v", got)
	}
}

func FuzzUnmarshalEntry(f *testing.F) {
	f.Add(marshalEntry(&Response{URL: "u", Header: http.Header{"A": {"b"}}, Body: []byte("c"), FetchedAt: t0, ExpiresAt: t0}))
	f.Add([]byte("CCCE\x01"))
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := unmarshalEntry(p)
		if err != nil {
			return
		}
		if err := r.check(); err != nil {
			t.Fatalf("decoded an entry that fails check: %v", err)
		}
	})
}
