// Package node assembles Cocoon's roles from their configuration — keys in
// a data directory, trust policy, engine, listeners — and runs them as
// servers. cmd/cocoon is flag parsing around it; Up runs a whole network in
// one process.
package node

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/client"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/internal/serve"
	"github.com/cocoon-go/cocoon/metrics"
	"github.com/cocoon-go/cocoon/proxy"
)

// ProxyConfig configures a proxy node.
type ProxyConfig struct {
	DataDir      string       `json:"data_dir"`
	Listen       string       `json:"listen"`        // clients connect here (TLS)
	WorkerListen string       `json:"worker_listen"` // workers dial here (TLS)
	Proxy        proxy.Config `json:"proxy"`
	Trust        Trust        `json:"trust"`
	Money        *MoneyConfig `json:"money,omitempty"`
	// Payments, if set, are the proxy's payments made ready by the caller
	// (`cocoon up` opens its channels itself); Money is then not used.
	Payments *proxy.Payments `json:"-"`
	// Limits protect the client listener from slow and greedy clients;
	// nil: serve.DefaultLimits.
	Limits *serve.Limits `json:"limits,omitempty"`
	// Ops is what the proxy serves its operator: metrics and health on the
	// client listener unless Ops.Metrics names another, pprof if asked.
	Ops Ops `json:"ops"`
}

// limits is l, or the defaults when nil.
func limits(l *serve.Limits) serve.Limits {
	if l == nil {
		return serve.DefaultLimits()
	}
	return *l
}

// Proxy is a running proxy node.
type Proxy struct {
	*proxy.Proxy
	Addr       string // clients' address
	WorkerAddr string // workers' address
	Pin        string // hex SHA-256 of the proxy's TLS key, for clients and workers to pin
	// MetricsAddr is where /metrics and /healthz are served: Addr (over
	// TLS), or the address of Ops.Metrics.
	MetricsAddr string
	srv         *http.Server
	wln         net.Listener
	ledger      *accounts.File
	money       io.Closer
	ops         *opsServer
}

// StartProxy starts a proxy node.
func StartProxy(cfg ProxyConfig, log *slog.Logger) (*Proxy, error) {
	checker, err := cfg.Trust.checkerWithRoot(cfg.DataDir, cfg.Money, log)
	if err != nil {
		return nil, err
	}
	cert, err := identity.TLS(filepath.Join(cfg.DataDir, "tls.pem"), "cocoon-proxy")
	if err != nil {
		return nil, err
	}
	pin, _ := identity.CertKeyHash(cert)
	ledger, err := accounts.OpenFile(filepath.Join(cfg.DataDir, "ledger.jsonl"))
	if err != nil {
		return nil, err
	}
	// Payments go into the constructor: the proxy never serves unpaid.
	reg := cfg.Ops.registry()
	opts := []proxy.Option{proxy.WithMetrics(metrics.NewProxy(reg))}
	var money io.Closer
	switch {
	case cfg.Payments != nil:
		opts = append(opts, proxy.WithPayments(cfg.Payments))
	case cfg.Money != nil:
		pm, params, closer, err := proxyMoney(context.Background(), cfg.DataDir, cfg.Trust.Root, cfg.Money, log)
		if err != nil {
			ledger.Close()
			return nil, err
		}
		if cfg.Proxy.WorkerFee == 0 {
			cfg.Proxy.WorkerFee = params.WorkerFee // what workers expect (price.Split)
		}
		opts, money = append(opts, proxy.WithPayments(pm)), closer
	}
	p, err := proxy.New(cfg.Proxy, cert, checker, ledger, log, opts...)
	if err != nil {
		if money != nil {
			money.Close()
		}
		ledger.Close()
		return nil, err
	}
	ops, err := startOps(cfg.Ops, reg, func() metrics.Health {
		n := p.Workers()
		return metrics.Health{Role: "proxy", Workers: &n}
	}, log)
	if err != nil {
		p.Close()
		if money != nil {
			money.Close()
		}
		ledger.Close()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	stop := func() {
		ops.close()
		p.Close()
		if money != nil {
			money.Close()
		}
		ledger.Close()
	}
	wln, err := net.Listen("tcp", cfg.WorkerListen)
	if err != nil {
		stop()
		return nil, fmt.Errorf("proxy: worker listener: %w", err)
	}
	lim := limits(cfg.Limits)
	cln, err := serve.Listen(cfg.Listen, lim)
	if err != nil {
		wln.Close()
		stop()
		return nil, fmt.Errorf("proxy: client listener: %w", err)
	}
	srv := serve.Server(ops.mount(p.Handler()), lim, log)
	srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, NextProtos: []string{"h2", "http/1.1"}}
	go srv.ServeTLS(cln, "", "")
	go p.ServeWorkers(wln)
	n := &Proxy{Proxy: p, Addr: cln.Addr().String(), WorkerAddr: wln.Addr().String(), Pin: hex.EncodeToString(pin[:]), srv: srv, wln: wln, ledger: ledger, money: money, ops: ops}
	n.MetricsAddr = ops.at(n.Addr)
	log.Info("proxy listening", "clients", n.Addr, "workers", n.WorkerAddr, "pin", n.Pin)
	return n, nil
}

// Close stops the proxy.
func (n *Proxy) Close() error {
	n.ops.close()
	n.wln.Close()
	err := n.Proxy.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n.srv.Shutdown(ctx)
	n.srv.Close()
	if n.money != nil {
		err = errors.Join(err, n.money.Close())
	}
	return errors.Join(err, n.ledger.Close())
}

// ClientConfig configures a client node.
type ClientConfig struct {
	DataDir string        `json:"data_dir"`
	Listen  string        `json:"listen"` // the OpenAI API, e.g. 127.0.0.1:10000
	Client  client.Config `json:"client"`
	Trust   Trust         `json:"trust"`
	Money   *MoneyConfig  `json:"money,omitempty"`
	// Limits protect the OpenAI listener from slow and greedy apps; nil:
	// serve.DefaultLimits.
	Limits *serve.Limits `json:"limits,omitempty"`
	// Ops is what the client serves its operator: metrics and health on
	// the OpenAI address unless Ops.Metrics names another, pprof if asked.
	Ops Ops `json:"ops"`
}

// Client is a running client node.
type Client struct {
	*client.Client
	Addr    string
	BaseURL string // the OpenAI base URL, http://ADDR/v1
	// MetricsAddr is where /metrics and /healthz are served: Addr, or the
	// address of Ops.Metrics.
	MetricsAddr string
	srv         *http.Server
	journal     *accounts.File
	money       io.Closer
	ops         *opsServer
}

// StartClient starts a client node. With cfg.Money it first opens (or
// resumes) the client's channel to its proxy, so that it pays for every
// answer it serves; opts are passed to client.New (a caller holding a
// channel already passes client.WithPayments instead of cfg.Money).
func StartClient(cfg ClientConfig, log *slog.Logger, opts ...client.Option) (*Client, error) {
	checker, err := cfg.Trust.checkerWithRoot(cfg.DataDir, cfg.Money, log)
	if err != nil {
		return nil, err
	}
	key, err := ClientKey(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	journal, err := accounts.OpenFile(filepath.Join(cfg.DataDir, "receipts.jsonl"))
	if err != nil {
		return nil, err
	}
	// Listen first, to refuse an open address before any money moves;
	// serve only once the client can pay.
	lim := limits(cfg.Limits)
	ln, err := serve.Listen(cfg.Listen, lim)
	if err != nil {
		journal.Close()
		return nil, fmt.Errorf("client: %w", err)
	}
	n := &Client{journal: journal}
	fail := func(err error) (*Client, error) {
		if n.ops != nil {
			n.ops.close()
		}
		ln.Close()
		if n.Client != nil {
			n.Client.Close()
		}
		if n.money != nil {
			n.money.Close()
		}
		journal.Close()
		return nil, err
	}
	if len(cfg.Client.APIKeys) == 0 && !loopback(ln.Addr()) {
		return fail(fmt.Errorf("client: %w: %s is reachable from other machines, and whoever reaches the OpenAI API spends this client's deposit: listen on 127.0.0.1, or give apps API keys (--api-keys FILE; cocoon client new-key makes one)", ErrNeedAPIKeys, cfg.Listen))
	}
	if cfg.Money != nil {
		pay, money, err := clientMoney(context.Background(), cfg, key, checker, log)
		if err != nil {
			return fail(err)
		}
		n.money = money
		opts = append(opts, pay)
	}
	reg := cfg.Ops.registry()
	opts = append([]client.Option{client.WithMetrics(metrics.NewClient(reg))}, opts...)
	if n.Client, err = client.New(cfg.Client, key, checker, journal, log, opts...); err != nil {
		return fail(err)
	}
	if n.ops, err = startOps(cfg.Ops, reg, func() metrics.Health { return metrics.Health{Role: "client"} }, log); err != nil {
		return fail(fmt.Errorf("client: %w", err))
	}
	// A proxy serves a paying client only once it holds a voucher of its
	// channel: post it before taking requests.
	if err := n.Client.Flush(); err != nil {
		log.Warn("the proxy has no voucher of this client's channel yet; it is sent again shortly", "err", err)
	}
	n.srv = serve.Server(n.ops.mount(n.Client.Handler()), lim, log)
	go n.srv.Serve(ln)
	n.Addr = ln.Addr().String()
	n.BaseURL = "http://" + n.Addr + "/v1"
	n.MetricsAddr = n.ops.at(n.Addr)
	log.Info("client serving the OpenAI API", "base_url", n.BaseURL, "proxy", cfg.Client.Proxy)
	return n, nil
}

// ErrNeedAPIKeys is the error for a client asked to serve its OpenAI API
// beyond loopback without API keys.
var ErrNeedAPIKeys = errors.New("API keys are required to listen beyond loopback")

// loopback reports whether a is a loopback address.
func loopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// Close stops the client: it stops serving, pays what it owes the proxy,
// and closes its channel and books.
func (n *Client) Close() error {
	n.ops.close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n.srv.Shutdown(ctx)
	n.srv.Close()
	err := n.Client.Close()
	if n.money != nil {
		err = errors.Join(err, n.money.Close())
	}
	return errors.Join(err, n.journal.Close())
}

// ClientKey is the account key of the client whose data directory is dir,
// made on first use: it signs the client's requests and vouchers, and its
// public half, in hex, is the client's account at proxies.
func ClientKey(dir string) (ed25519.PrivateKey, error) {
	return identity.Ed25519(filepath.Join(dir, "client.key"))
}

// LoadConfig reads a JSON config file into v, refusing unknown fields.
func LoadConfig(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Ledger is the proxy's books.
func (n *Proxy) Ledger() accounts.Ledger { return n.ledger }
