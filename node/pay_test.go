package node

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/chain/local"
	"github.com/cocoon-go/cocoon/client"
	"github.com/cocoon-go/cocoon/identity"
)

// servedChain is a local chain served over HTTP, so that a proxy and a
// client in one process share it, with a funded wallet key per name.
func servedChain(t *testing.T, names ...string) (spec string, keys map[string]string) {
	t.Helper()
	dir := t.TempDir()
	c, err := local.Open(filepath.Join(dir, "chain"), &local.Options{NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go local.Serve(ln, c)
	t.Cleanup(func() { ln.Close(); c.Close() })
	keys = map[string]string{}
	for _, name := range names {
		keys[name] = filepath.Join(dir, name+".key")
		key, err := identity.Ed25519(keys[name])
		if err != nil {
			t.Fatal(err)
		}
		w, err := chain.NewWallet(c, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Fund(context.Background(), w.Address(), 50_000_000_000); err != nil {
			t.Fatal(err)
		}
	}
	return "local+http://" + ln.Addr().String(), keys
}

// Finding 10: a client that neither pins its proxy nor finds it registered
// in the root contract does not open a channel to the payee the proxy
// names: a man in the middle would name its own and take the deposit.
func TestClientRefusesUnpinnedProxyPayee(t *testing.T) {
	spec, keys := servedChain(t, "proxy", "client")
	dir := t.TempDir()
	rootPath, meas, err := SimulatedVendor(filepath.Join(dir, "tee"))
	if err != nil {
		t.Fatal(err)
	}
	trust := Trust{SimulatedRoots: []string{rootPath}, SimulatedMeasurements: []string{meas}}
	log := slog.New(slog.DiscardHandler)
	p, err := StartProxy(ProxyConfig{DataDir: filepath.Join(dir, "proxy"), Listen: "127.0.0.1:0", WorkerListen: "127.0.0.1:0",
		Trust: trust, Money: &MoneyConfig{Chain: spec, WalletKey: keys["proxy"], Deposit: "1"}}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := StartClient(ClientConfig{DataDir: filepath.Join(dir, "client"), Listen: "127.0.0.1:0", Trust: trust,
		Client: client.Config{Proxy: "https://" + p.Addr},
		Money:  &MoneyConfig{Chain: spec, WalletKey: keys["client"], Deposit: "1"}}, log)
	if err == nil {
		c.Close()
		t.Fatal("an unpinned client opened a channel to the payee its proxy named")
	}
	if !strings.Contains(err.Error(), "pin") {
		t.Errorf("refusal %q does not say to pin the proxy", err)
	}
	// Pinned, it pays.
	c, err = StartClient(ClientConfig{DataDir: filepath.Join(dir, "client"), Listen: "127.0.0.1:0", Trust: trust,
		Client: client.Config{Proxy: "https://" + p.Addr, ProxyPin: p.Pin},
		Money:  &MoneyConfig{Chain: spec, WalletKey: keys["client"], Deposit: "1"}}, log)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
