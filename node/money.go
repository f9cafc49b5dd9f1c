package node

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/chain/local"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/price"
)

// Manifest names the on-chain accounts of a `cocoon up` network, so that
// `cocoon status` and later starts find them. It lives in DATA/network.json.
type Manifest struct {
	Chain    string            `json:"chain"`     // "local"
	ChainURL string            `json:"chain_url"` // where the running network serves its chain
	Root     string            `json:"root"`      // root contract address
	Accounts []ManifestAccount `json:"accounts"`
	Channels []ManifestChannel `json:"channels"`
}

// ManifestAccount is one wallet of the network.
type ManifestAccount struct {
	Name    string `json:"name"`
	Role    string `json:"role"` // "owner", "client", "proxy" or "worker"
	Address string `json:"address"`
	Key     string `json:"key"` // key file, relative to the data directory
}

// ManifestChannel is one payment channel of the network.
type ManifestChannel struct {
	Address string `json:"address"`
	Payer   string `json:"payer"` // account names
	Payee   string `json:"payee"`
	Nonce   uint64 `json:"nonce"`
}

// Amounts `cocoon up` moves on its local chain, in nanoTON.
const (
	upFunding   = 1_000 * 1_000_000_000 // each wallet, from the faucet
	upRootValue = 1_000_000_000         // sent with the root's deployment, for its storage
)

// money is the on-chain side of a `cocoon up` network.
type money struct {
	chain    *local.Chain
	root     *address.Address
	wallets  map[string]*chain.Wallet
	keys     map[string]ed25519.PrivateKey // the wallets' keys
	manifest Manifest
}

// setUpMoney opens the local chain under dataDir, funds a wallet per account
// from the faucet and deploys the root contract allowing the given worker
// measurement and model hashes. A second start finds everything in place.
func setUpMoney(ctx context.Context, dataDir string, names []ManifestAccount, measurement [32]byte, models [][32]byte, p price.Price, log *slog.Logger) (*money, error) {
	c, err := local.Open(filepath.Join(dataDir, "chain"), &local.Options{Logger: log.With("role", "chain")})
	if err != nil {
		return nil, err
	}
	m := &money{chain: c, wallets: map[string]*chain.Wallet{}, keys: map[string]ed25519.PrivateKey{}, manifest: Manifest{Chain: local.Name}}
	fail := func(err error) (*money, error) {
		c.Close()
		return nil, err
	}
	for _, a := range names {
		key, err := identity.Ed25519(filepath.Join(dataDir, a.Key))
		if err != nil {
			return fail(err)
		}
		w, err := chain.NewWallet(c, key)
		if err != nil {
			return fail(err)
		}
		acct, err := c.Account(ctx, w.Address())
		if err != nil {
			return fail(err)
		}
		if acct.Balance == 0 {
			if _, err := c.Fund(ctx, w.Address(), upFunding); err != nil {
				return fail(fmt.Errorf("funding %s: %w", a.Name, err))
			}
		}
		a.Address = w.Address().String()
		m.wallets[a.Name] = w
		m.keys[a.Name] = key
		m.manifest.Accounts = append(m.manifest.Accounts, a)
	}

	owner := m.wallets["owner"]
	rc := contracts.RootConfig{
		Owner:              owner.Address(),
		Params:             RootParams(p),
		WorkerMeasurements: [][32]byte{measurement},
		Models:             models,
	}
	init, err := rc.StateInit()
	if err != nil {
		return fail(err)
	}
	if m.root, err = rc.Address(); err != nil {
		return fail(err)
	}
	if acct, err := c.Account(ctx, m.root); err != nil {
		return fail(err)
	} else if acct.Code == nil {
		if _, err := contracts.Send(ctx, owner, chain.Transfer{To: m.root, Amount: upRootValue, StateInit: init}); err != nil {
			return fail(fmt.Errorf("deploying the root contract: %w", err))
		}
		log.Info("root contract deployed", "address", m.root.String())
	}
	m.manifest.Root = m.root.String()
	return m, nil
}

// writeManifest saves m's manifest in dataDir.
func (m *money) writeManifest(dataDir string) error {
	b, err := json.MarshalIndent(m.manifest, "", "  ")
	if err != nil {
		return err
	}
	return identity.WriteFile(filepath.Join(dataDir, "network.json"), append(b, '\n'))
}

// ReadManifest reads DATA/network.json.
func ReadManifest(dataDir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "network.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s has no network.json: is it the data directory of `cocoon up`?", dataDir)
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dataDir, "network.json"), err)
	}
	return &m, nil
}

// RootPolicy reads the allow-lists of the root contract at root: worker
// measurements and model hashes, as hex.
func RootPolicy(ctx context.Context, c chain.Chain, root *address.Address) (measurements, models []string, err error) {
	for _, q := range []struct {
		method string
		out    *[]string
	}{{"get_worker_measurements", &measurements}, {"get_models", &models}} {
		vals, err := c.RunGetMethod(ctx, root, q.method)
		if err != nil {
			return nil, nil, fmt.Errorf("root %s: %s: %w", root, q.method, err)
		}
		hashes, err := contracts.ParseHashList(vals)
		if err != nil {
			return nil, nil, fmt.Errorf("root %s: %s: %w", root, q.method, err)
		}
		for _, h := range hashes {
			*q.out = append(*q.out, hex.EncodeToString(h[:]))
		}
	}
	return measurements, models, nil
}

// upCloseDelay is the close delay of a `cocoon up` network's channels: the
// root's client and worker close delays (RootParams).
const upCloseDelay = time.Hour

// upDeposit is what each channel of a `cocoon up` network is opened with.
const upDeposit = 100 * 1_000_000_000

// channelEnds are the off-chain ends of a `cocoon up` network's channels.
type channelEnds struct {
	clientPayer  *payments.Payer            // client → proxy, the client's end
	proxyPayee   *payments.Payee            // client → proxy, the proxy's end
	workerPayers map[string]*payments.Payer // proxy → worker, by worker payout address
	workerPayees map[string]*payments.Payee // proxy → worker, the worker's end, by worker name
}

func (e *channelEnds) close() {
	if e == nil {
		return
	}
	if e.clientPayer != nil {
		e.clientPayer.Close()
	}
	if e.proxyPayee != nil {
		e.proxyPayee.Close()
	}
	for _, p := range e.workerPayers {
		p.Close()
	}
	for _, p := range e.workerPayees {
		p.Close()
	}
}

// openChannels opens (or finds) the client→proxy channel and a proxy→worker
// channel per worker, and opens their off-chain ends in the roles' data
// directories. The client's account key signs its vouchers, so the proxy
// knows a client's channel by the key that signs its requests.
func (m *money) openChannels(ctx context.Context, dataDir string, clientKey ed25519.PrivateKey, workers []string) (_ *channelEnds, err error) {
	proxyKey, err := identity.Ed25519(filepath.Join(dataDir, "proxy", "voucher.key"))
	if err != nil {
		return nil, err
	}
	ends := &channelEnds{workerPayers: map[string]*payments.Payer{}, workerPayees: map[string]*payments.Payee{}}
	defer func() {
		if err != nil {
			ends.close()
		}
	}()
	// The first channel each payer may pay through, as every payer finds
	// it: a closing one is passed over for a new one.
	open := func(payer, payee string, key ed25519.PrivateKey, payeeKey ed25519.PublicKey) (*payments.Payer, *payments.Payee, error) {
		p, _, err := payments.OpenOrResume(ctx, m.wallets[payer], contracts.ChannelConfig{
			Payer: m.wallets[payer].Address(), Payee: m.wallets[payee].Address(),
			PayerKey: key.Public().(ed25519.PublicKey), PayeeKey: payeeKey, CloseDelay: upCloseDelay,
		}, key, filepath.Join(dataDir, payer, "channels"), upDeposit)
		if err != nil {
			return nil, nil, fmt.Errorf("the %s → %s channel: %w", payer, payee, err)
		}
		m.manifest.Channels = append(m.manifest.Channels, ManifestChannel{Address: p.Address().String(), Payer: payer, Payee: payee, Nonce: p.Config().Nonce})
		q, err := payments.OpenPayee(filepath.Join(dataDir, payee, "channels"), p.Config())
		if err == nil {
			if _, err = q.Refresh(ctx, m.chain); err != nil {
				q.Close()
			}
		}
		if err != nil {
			p.Close()
			return nil, nil, err
		}
		return p, q, nil
	}
	if ends.clientPayer, ends.proxyPayee, err = open("client", "proxy", clientKey, proxyKey.Public().(ed25519.PublicKey)); err != nil {
		return nil, err
	}
	for _, name := range workers {
		payer, payee, err := open("proxy", name, proxyKey, m.keys[name].Public().(ed25519.PublicKey))
		if err != nil {
			return nil, err
		}
		ends.workerPayers[m.wallets[name].Address().String()] = payer
		ends.workerPayees[name] = payee
	}
	return ends, nil
}

// RootParams are the root parameters for prices p: workers get 90% of the base price (the proxy keeps
// a 10% fee, as ProxyDefaults), no minimum stakes, and an hour for payees to claim after a close starts.
func RootParams(p price.Price) contracts.Params {
	return contracts.Params{
		BasePrice:            p.PerToken,
		WorkerFee:            p.PerToken * 9 / 10,
		PromptMultiplier:     uint32(p.PromptMul),
		CachedMultiplier:     uint32(p.CachedMul),
		CompletionMultiplier: uint32(p.CompletionMul),
		ClientCloseDelay:     time.Hour,
		WorkerCloseDelay:     time.Hour,
	}
}
