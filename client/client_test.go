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

// TestDirectoryFetchDoesNotBlockRequests: while one request waits for a
// slow directory fetch, another one uses the list verified before.
func TestDirectoryFetchDoesNotBlockRequests(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) > 1 {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		json.NewEncoder(w).Encode(wire.Directory{})
	}))
	defer proxy.Close()
	defer close(release)
	c := newTestClient(t, proxy.URL, Config{DirectoryTTL: time.Millisecond})
	if _, err := c.Directory(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // the list is now stale
	go c.Directory(context.Background())
	for calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	got := make(chan error, 1)
	go func() {
		_, err := c.Directory(context.Background())
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("a request behind a slow directory fetch: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a request waited for another one's directory fetch, though a verified list was at hand")
	}
	if calls.Load() != 2 {
		t.Errorf("the proxy was asked %d times, want one fetch at a time", calls.Load())
	}
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
