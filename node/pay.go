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

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/identity"
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
		d, err := ParseAmount(m.Deposit)
		if err != nil {
			return nil, nil, nil, 0, fmt.Errorf("deposit: %w", err)
		}
		deposit = d
	}
	c, closer, err := OpenChain(ctx, m.Chain, log)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	key, err := LoadWalletKey(m.WalletKey)
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

// proxyMoney makes p paid by its clients' channels and paying workers by
// channels it opens, with its wallet.
func proxyMoney(ctx context.Context, p *proxy.Proxy, dataDir string, m *MoneyConfig, log *slog.Logger) (io.Closer, error) {
	watch, err := m.watchInterval()
	if err != nil {
		return nil, err
	}
	c, closer, w, deposit, err := m.open(ctx, log)
	if err != nil {
		return nil, err
	}
	key, err := identity.Ed25519(filepath.Join(dataDir, "voucher.key"))
	if err != nil {
		closer.Close()
		return nil, err
	}
	p.PayWith(&proxy.Payments{Chain: c, Wallet: w, Dir: filepath.Join(dataDir, "channels"), VoucherKey: key, WorkerDeposit: deposit, WatchInterval: watch})
	log.Info("paid by channel", "wallet", w.Address().String(), "chain", c.Name())
	return closer, nil
}

// WorkerMoney is what a separately run worker needs to be paid: its wallet
// and where its proxy's channel is found and kept.
func WorkerMoney(ctx context.Context, dataDir string, m *MoneyConfig, log *slog.Logger) (*worker.Payments, io.Closer, error) {
	watch, err := m.watchInterval()
	if err != nil {
		return nil, nil, err
	}
	c, closer, w, _, err := m.open(ctx, log)
	if err != nil {
		return nil, nil, err
	}
	log.Info("paid by channel", "wallet", w.Address().String(), "chain", c.Name())
	return &worker.Payments{Wallet: w, Chain: c, Dir: filepath.Join(dataDir, "channels"), WatchInterval: watch}, closer, nil
}

// clientMoney opens (or finds) the client's channel to its proxy, funded
// with m.Deposit, and makes the client pay through it.
func (n *Client) clientMoney(ctx context.Context, dataDir string, key ed25519.PrivateKey, m *MoneyConfig, log *slog.Logger) (io.Closer, error) {
	c, closer, w, deposit, err := m.open(ctx, log)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (io.Closer, error) {
		closer.Close()
		return nil, err
	}
	pp, err := n.Client.ProxyPayee(ctx)
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
	store := filepath.Join(dataDir, "channels")
	cfg, state, err := payments.Usable(ctx, c, contracts.ChannelConfig{Payer: w.Address(), Payee: proxyAddr,
		PayerKey: key.Public().(ed25519.PublicKey), PayeeKey: ed25519.PublicKey(pp.Key), CloseDelay: time.Hour}, store)
	if err != nil {
		return fail(err)
	}
	addr, err := cfg.Address()
	if err != nil {
		return fail(err)
	}
	if state == nil {
		if deposit == 0 {
			return fail(fmt.Errorf("no open channel to the proxy (channel %d would be %s): give a deposit to open one", cfg.Nonce, addr))
		}
		if _, err := payments.Open(ctx, w, cfg, deposit); err != nil && !errors.Is(err, payments.ErrAlreadyOpen) {
			return fail(fmt.Errorf("opening a channel to the proxy: %w", err))
		}
		log.Info("channel to the proxy opened", "channel", addr.String(), "deposit", FormatTON(deposit))
	}
	payer, err := payments.OpenPayer(store, cfg, key)
	if err != nil {
		return fail(err)
	}
	if _, err := payer.Refresh(ctx, c); err != nil {
		payer.Close()
		return fail(err)
	}
	n.Client.PayWith(payer)
	log.Info("paying the proxy by channel", "channel", payer.Address().String(), "deposit", FormatTON(payer.Deposit()), "paid", FormatTON(payer.Total()))
	return closerFunc(func() error { n.Client.Flush(); payer.Close(); return closer.Close() }), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }
