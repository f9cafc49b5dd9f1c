package node

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/payments"
)

// BenchmarkSettlement counts the on-chain transactions a `cocoon up` network
// makes per 1,000 requests, settlement on stop included ("tx/1000req"), and
// the gas its claims burn. The engine is an instant fake, so the figure is the
// network's, not the model's. Run with -benchtime 1000x.
func BenchmarkSettlement(b *testing.B) {
	fake := enginetest.NewFakeServer(enginetest.FakeOptions{Answer: "an answer of some words"})
	defer fake.Close()
	n, err := Up(context.Background(), UpConfig{DataDir: b.TempDir(), Addr: "127.0.0.1:0", Workers: 2, Engine: EngineConfig{URL: fake.URL}}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	before := n.Chain.Status().Transactions
	body := `{"model":"fake-model","messages":[{"role":"user","content":"hello"}]}`
	b.ResetTimer()
	for range b.N {
		resp, err := http.Post(n.BaseURL+"/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("HTTP %d", resp.StatusCode)
		}
	}
	b.StopTimer()
	c := n.Chain
	// Close settles (claims) but also closes the chain; count through a
	// second handle afterwards is not possible, so settle first by closing
	// the roles and read the count from the snapshot the chain keeps.
	if err := n.closeRoles(); err != nil {
		b.Fatal(err)
	}
	after := c.Status().Transactions
	n.closeChain()
	b.ReportMetric(float64(after-before)*1000/float64(b.N), "tx/1000req")
}

// TestStatusShowsAClose: when the client starts closing its channel, the
// status of the running network and of the stopped one shows the channel
// closing and when the client may finish; the proxy's clean stop claims the
// client's vouchers all the same.
func TestStatusShowsAClose(t *testing.T) {
	fake := enginetest.NewFakeServer(enginetest.FakeOptions{Answer: "an answer of some words"})
	defer fake.Close()
	dir := t.TempDir()
	ctx := context.Background()
	n, err := Up(ctx, UpConfig{DataDir: dir, Addr: "127.0.0.1:0", Workers: 1, Engine: EngineConfig{URL: fake.URL}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close() // a second Close does nothing
	resp, err := http.Post(n.BaseURL+"/chat/completions", "application/json", strings.NewReader(`{"model":"fake-model","messages":[{"role":"user","content":"hello"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	n.Client.Flush()
	waitfor.Until(t, "the proxy to get the client's voucher", func() bool { return n.ends.proxyPayee.Total() > 0 })

	key, err := identity.Ed25519(filepath.Join(dir, "wallets", "client.key"))
	if err != nil {
		t.Fatal(err)
	}
	wallet, err := chain.NewWallet(n.Chain, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := payments.Find(ctx, n.Chain, n.ends.proxyPayee.Address().String())
	if err != nil {
		t.Fatal(err)
	}
	closing, err := payments.StartClose(ctx, wallet, cfg)
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string, st *Status, settled bool) {
		t.Helper()
		for _, c := range st.Channels {
			if c.Payer != "client" {
				if !c.ClosableAt.IsZero() || c.State != "open" {
					t.Errorf("%s: channel %s→%s is %s, closable at %v", when, c.Payer, c.Payee, c.State, c.ClosableAt)
				}
				continue
			}
			if c.State != "closing" || !c.ClosableAt.Equal(closing.ClosableAt()) || c.ClaimError != "" {
				t.Errorf("%s: client's channel %+v, want closing, closable at %v", when, c, closing.ClosableAt())
			}
			if settled && (c.Claimed == 0 || c.Claimed != c.VoucherTotal) {
				t.Errorf("%s: client's channel claimed %d of a voucher of %d", when, c.Claimed, c.VoucherTotal)
			}
		}
	}
	st, err := n.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	check("running", st, false)
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = ReadStatus(ctx, dir); err != nil {
		t.Fatal(err)
	}
	check("stopped", st, true)

	// Started again, the client pays through a new channel: the proxy
	// serves no client on a closing one.
	n2, err := Up(ctx, UpConfig{DataDir: dir, Addr: "127.0.0.1:0", Workers: 1, Engine: EngineConfig{URL: fake.URL}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	resp, err = http.Post(n2.BaseURL+"/chat/completions", "application/json", strings.NewReader(`{"model":"fake-model","messages":[{"role":"user","content":"hello"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after restarting: HTTP %d", resp.StatusCode)
	}
	if st, err = n2.Status(ctx); err != nil {
		t.Fatal(err)
	}
	open := 0
	for _, c := range st.Channels {
		if c.Payer == "client" && c.State == "open" {
			open++
		}
	}
	if open != 1 {
		t.Errorf("after restarting, %d open client channels, want 1: %+v", open, st.Channels)
	}
}
