package client

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/wire"
)

// newTestClient is a client of the proxy at proxyURL that trusts no
// evidence at all.
func newTestClient(t *testing.T, proxyURL string, cfg Config, opts ...Option) *Client {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	cfg.Proxy = proxyURL
	c, err := New(cfg, key, attest.NewCache(&attest.Checker{}), nil, slog.New(slog.DiscardHandler), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewRefusesProxyWithoutScheme(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	for _, proxy := range []string{"127.0.0.1:10443", "localhost:10443", "proxy.example:443", "ftp://proxy.example", "https://", "https://host/path", ""} {
		_, err := New(Config{Proxy: proxy}, key, attest.NewCache(&attest.Checker{}), nil, slog.New(slog.DiscardHandler))
		if !errors.Is(err, ErrProxyURL) {
			t.Errorf("New(proxy %q) = %v, want ErrProxyURL", proxy, err)
		}
	}
	for _, proxy := range []string{"https://127.0.0.1:10443", "http://localhost:8080/", "https://proxy.example"} {
		if _, err := New(Config{Proxy: proxy}, key, attest.NewCache(&attest.Checker{}), nil, slog.New(slog.DiscardHandler)); err != nil {
			t.Errorf("New(proxy %q): %v", proxy, err)
		}
	}
}

// handlerTransport answers every request with its handler, in memory: a
// client that uses it runs inside a synctest bubble, where sockets cannot.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// TestDirectoryFetchDoesNotBlockRequests: the list is reused for
// DirectoryTTL and fetched again after; while one request waits for that
// slow fetch, another one uses the list verified before.
func TestDirectoryFetchDoesNotBlockRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		release := make(chan struct{})
		defer close(release)
		c := newTestClient(t, "http://proxy.example", Config{DirectoryTTL: time.Minute})
		c.http = &http.Client{Transport: handlerTransport{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) > 1 {
				select {
				case <-release:
				case <-r.Context().Done():
				}
			}
			json.NewEncoder(w).Encode(wire.Directory{})
		})}}
		if _, err := c.Directory(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute - time.Nanosecond)
		if _, err := c.Directory(context.Background()); err != nil || calls.Load() != 1 {
			t.Fatalf("within DirectoryTTL: %v, %d fetches; want the list reused", err, calls.Load())
		}
		time.Sleep(time.Nanosecond) // the list is now stale
		go c.Directory(context.Background())
		synctest.Wait() // the second fetch is held by the proxy
		if calls.Load() != 2 {
			t.Fatalf("%d fetches once the list is stale, want 2", calls.Load())
		}
		got := make(chan error, 1)
		go func() {
			_, err := c.Directory(context.Background())
			got <- err
		}()
		synctest.Wait()
		select {
		case err := <-got:
			if err != nil {
				t.Fatalf("a request behind a slow directory fetch: %v", err)
			}
		default:
			t.Fatal("a request waited for another one's directory fetch, though a verified list was at hand")
		}
		if calls.Load() != 2 {
			t.Errorf("the proxy was asked %d times, want one fetch at a time", calls.Load())
		}
	})
}

func TestClientRefusedMapIsBounded(t *testing.T) {
	const listed = 3 * maxRefused
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d wire.Directory
		for i := range listed {
			d.Workers = append(d.Workers, wire.WorkerInfo{Evidence: fmt.Appendf(nil, "bogus evidence %d", i)})
		}
		json.NewEncoder(w).Encode(d)
	}))
	defer proxy.Close()
	c := newTestClient(t, proxy.URL, Config{})
	ws, err := c.Directory(context.Background())
	if err != nil || len(ws) != 0 {
		t.Fatalf("directory of bogus workers: %d verified, %v", len(ws), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.refused) > maxRefused {
		t.Errorf("the client remembers %d refused evidences, want at most %d", len(c.refused), maxRefused)
	}
}
