package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/chain/chainspec"
	"github.com/cocoon-go/cocoon/client"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/nanoton"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/proxy"
	"github.com/cocoon-go/cocoon/worker"
)

// MoneyConfig connects a separately run role to a chain and a wallet, so
// that it pays or is paid by channel. Without it a role runs unpaid (the
// proxy then holds clients to its credit limit against booked costs).
type MoneyConfig struct {
	Chain     string `json:"chain"`      // local:DIR, local+http://HOST:PORT, ton:testnet|mainnet|CONFIG
	WalletKey string `json:"wallet_key"` // the role's wallet key file (cocoon wallet new)
	// Deposit opens channels: the client's to its proxy, and the proxy's to
	// each new worker. TON ("1.5") or nanoTON ("1500000000n").
	Deposit string `json:"deposit"`
	// WatchInterval is how often a payee (the proxy, a worker) reads the
	// state of the channels it is paid through, to claim at once on any
	// whose payer starts a close: a Go duration ("30s"). "": 1 minute.
	WatchInterval string `json:"watch_interval,omitempty"`
}

// watchInterval is m.WatchInterval parsed; 0 for the default.
func (m *MoneyConfig) watchInterval() (time.Duration, error) {
	if m.WatchInterval == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(m.WatchInterval)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("watch interval %q: want a positive duration such as 30s", m.WatchInterval)
	}
	return d, nil
}

// open opens the chain and the wallet of m.
func (m *MoneyConfig) open(ctx context.Context, log *slog.Logger) (chain.Chain, io.Closer, *chain.Wallet, uint64, error) {
	var deposit uint64
	if m.Deposit != "" {
		d, err := nanoton.Parse(m.Deposit)
		if err != nil {
			return nil, nil, nil, 0, fmt.Errorf("deposit: %w", err)
		}
		deposit = d
	}
	c, closer, err := chainspec.Open(ctx, m.Chain, log)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	key, err := identity.LoadWalletKey(m.WalletKey)
	if err != nil {
		closer.Close()
		return nil, nil, nil, 0, err
	}
	w, err := chain.NewWallet(c, key)
	if err != nil {
		closer.Close()
		return nil, nil, nil, 0, err
	}
	return c, closer, w, deposit, nil
}

// rootParams reads the parameters of the root contract at root ("" for
// none: the zero Params, whose close delays leave the defaults).
func rootParams(ctx context.Context, c chain.Chain, root string) (contracts.Params, error) {
	if root == "" {
		return contracts.Params{}, nil
	}
	a, err := chain.ParseAddress(root)
	if err != nil {
		return contracts.Params{}, fmt.Errorf("root %q: %w", root, err)
	}
	vals, err := c.RunGetMethod(ctx, a, contracts.GetParams)
	if err != nil {
		return contracts.Params{}, fmt.Errorf("root %s: %s: %w", root, contracts.GetParams, err)
	}
	return contracts.ParseParams(vals)
}

// proxyMoney is how a proxy is paid by its clients' channels and pays
// workers by channels it opens, with its wallet, and the root contract's
// parameters (zero without a root). The root, if known, says the close
// delays: client channels that close sooner than its clientCloseDelay are
// refused, and worker channels are opened with its workerCloseDelay.
func proxyMoney(ctx context.Context, dataDir, root string, m *MoneyConfig, log *slog.Logger) (*proxy.Payments, contracts.Params, io.Closer, error) {
	watch, err := m.watchInterval()
	if err != nil {
		return nil, contracts.Params{}, nil, err
	}
	c, closer, w, deposit, err := m.open(ctx, log)
	if err != nil {
		return nil, contracts.Params{}, nil, err
	}
	fail := func(err error) (*proxy.Payments, contracts.Params, io.Closer, error) {
		closer.Close()
		return nil, contracts.Params{}, nil, err
	}
	params, err := rootParams(ctx, c, root)
	if err != nil {
		return fail(err)
	}
	key, err := identity.Ed25519(filepath.Join(dataDir, "voucher.key"))
	if err != nil {
		return fail(err)
	}
	log.Info("paid by channel", "wallet", w.Address().String(), "chain", c.Name())
	return &proxy.Payments{Chain: c, Wallet: w, Dir: filepath.Join(dataDir, "channels"), VoucherKey: key,
		WorkerDeposit: deposit, WatchInterval: watch, MinCloseDelay: params.ClientCloseDelay, WorkerCloseDelay: params.WorkerCloseDelay}, params, closer, nil
}

// WorkerMoney is what a separately run worker needs to be paid (pass it to
// NewWorker with worker.WithPayments): its wallet, where its proxies'
// channels are found and kept, and its books of what each proxy owes it
// (DATA/books.jsonl). The root contract at root, if given, says the worker
// fee proxies pay and the shortest close delay of a channel the worker
// accepts; without one, channels that close sooner than
// payments.DefaultMinCloseDelay are refused.
func WorkerMoney(ctx context.Context, dataDir, root string, m *MoneyConfig, log *slog.Logger) (*worker.Payments, io.Closer, error) {
	watch, err := m.watchInterval()
	if err != nil {
		return nil, nil, err
	}
	c, closer, w, _, err := m.open(ctx, log)
	if err != nil {
		return nil, nil, err
	}
	params, err := rootParams(ctx, c, root)
	if err != nil {
		closer.Close()
		return nil, nil, err
	}
	log.Info("paid by channel", "wallet", w.Address().String(), "chain", c.Name())
	return &worker.Payments{Wallet: w, Chain: c, Dir: filepath.Join(dataDir, "channels"), Journal: filepath.Join(dataDir, "books.jsonl"),
		WatchInterval: watch, MinCloseDelay: params.WorkerCloseDelay, WorkerFee: params.WorkerFee}, closer, nil
}

// clientMoney opens (or resumes) the client's channel to its proxy, funded
// with cfg.Money.Deposit, and returns the option that makes a client pay
// through it, and what to close after that client. The payee is whoever the
// proxy's directory names, so it must be vouched for: by the pinned TLS key
// the directory came over, or by the root contract's registry of proxies
// (cfg.Trust.Root).
func clientMoney(ctx context.Context, cfg ClientConfig, key ed25519.PrivateKey, checker *attest.Cache, log *slog.Logger) (client.Option, io.Closer, error) {
	c, closer, w, deposit, err := cfg.Money.open(ctx, log)
	if err != nil {
		return nil, nil, err
	}
	fail := func(err error) (client.Option, io.Closer, error) {
		closer.Close()
		return nil, nil, err
	}
	// A client that is never served asks the proxy who it is paid as; the
	// client that serves is made with its payments.
	asker, err := client.New(cfg.Client, key, checker, nil, log)
	if err != nil {
		return fail(err)
	}
	pp, err := asker.ProxyPayee(ctx)
	if err != nil {
		return fail(err)
	}
	if pp == nil {
		return fail(errors.New("the proxy takes no payments by channel"))
	}
	proxyAddr, err := address.ParseAddr(pp.Address)
	if err != nil || len(pp.Key) != ed25519.PublicKeySize {
		return fail(fmt.Errorf("the proxy's payee address or key is malformed"))
	}
	switch {
	case cfg.Client.ProxyPin != "":
		// The directory came over TLS pinned to the proxy's key.
	case cfg.Trust.Root != "":
		root, err := chain.ParseAddress(cfg.Trust.Root)
		if err != nil {
			return fail(fmt.Errorf("root %q: %w", cfg.Trust.Root, err))
		}
		if err := payments.RegisteredProxy(ctx, c, root, proxyAddr, pp.Key, cfg.Client.Proxy); err != nil {
			return fail(fmt.Errorf("not opening a channel to the proxy: %w", err))
		}
	default:
		return fail(fmt.Errorf("not opening a channel to the proxy: %w", payments.ErrUnverifiedPayee))
	}
	params, err := rootParams(ctx, c, cfg.Trust.Root)
	if err != nil {
		return fail(err)
	}
	delay := params.ClientCloseDelay
	if delay == 0 {
		delay = payments.DefaultMinCloseDelay
	}
	payer, opened, err := payments.OpenOrResume(ctx, w, contracts.ChannelConfig{Payer: w.Address(), Payee: proxyAddr,
		PayerKey: key.Public().(ed25519.PublicKey), PayeeKey: ed25519.PublicKey(pp.Key), CloseDelay: delay},
		key, filepath.Join(cfg.DataDir, "channels"), deposit)
	if err != nil {
		return fail(fmt.Errorf("a channel to the proxy: %w", err))
	}
	if opened {
		log.Info("channel to the proxy opened", "channel", payer.Address().String(), "deposit", nanoton.Format(deposit))
	}
	log.Info("paying the proxy by channel", "channel", payer.Address().String(), "deposit", nanoton.Format(payer.Deposit()), "paid", nanoton.Format(payer.Total()))
	return client.WithPayments(payer, payments.StreamConfig{Chain: c}), closerFunc(func() error {
		payer.Close()
		return closer.Close()
	}), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
