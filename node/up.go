package node

import (
	"context"
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
	"sync"
	"time"

	"github.com/cocoon-go/cocoon/attest/simulated"
	"github.com/cocoon-go/cocoon/chain/local"
	"github.com/cocoon-go/cocoon/client"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/internal/serve"
	"github.com/cocoon-go/cocoon/metrics"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/proxy"
	"github.com/cocoon-go/cocoon/worker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/xssnick/tonutils-go/address"
)

// UpConfig configures a whole network in one process.
type UpConfig struct {
	DataDir  string       // keys, vendor seed and books persist here
	Addr     string       // the client's OpenAI API
	Workers  int          // how many workers
	Engine   EngineConfig // what the workers run
	Progress io.Writer    // model loading progress, or nil
	// Ops is what the network serves its operator: every role's metrics
	// on one registry (each worker's labelled worker=NAME), at /metrics
	// of the client's OpenAI address and the proxy's client listener, or
	// on Ops.Metrics alone; pprof on Ops.Pprof.
	Ops Ops
}

// Network is a running one-process network.
type Network struct {
	Proxy   *Proxy
	Client  *Client
	Workers []*worker.Worker
	BaseURL string

	// Registry holds the metrics of every role of the network.
	Registry *prometheus.Registry

	// Chain is the local chain the network settles on, and Root its root contract.
	Chain *local.Chain
	Root  *address.Address

	chainLn  net.Listener
	manifest *Manifest
	ends     *channelEnds
	engine   engine.Engine
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// Up starts a whole network on this machine: a local chain with the root
// contract and a funded wallet per role, a proxy, cfg.Workers workers sharing
// one engine, and a client, all on loopback, with a simulated TEE whose
// vendor root the proxy and client are told to trust. Which measurements and
// models they accept is read from the root contract.
func Up(ctx context.Context, cfg UpConfig, log *slog.Logger) (_ *Network, err error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 2
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("up: %w", err)
	}
	vendorDir := filepath.Join(cfg.DataDir, "simulated-tee")
	rootPath, _, err := SimulatedVendor(vendorDir)
	if err != nil {
		return nil, err
	}

	n := &Network{Registry: cfg.Ops.registry()}
	ctx, n.cancel = context.WithCancel(ctx)
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	n.engine, err = OpenEngine(ctx, cfg.Engine, cfg.Progress, log)
	if err != nil {
		return nil, err
	}
	accounts := []ManifestAccount{{Name: "owner", Role: "owner"}, {Name: "client", Role: "client"}, {Name: "proxy", Role: "proxy"}}
	for i := range cfg.Workers {
		accounts = append(accounts, ManifestAccount{Name: fmt.Sprintf("worker-%d", i+1), Role: "worker"})
	}
	for i := range accounts {
		accounts[i].Key = filepath.Join("wallets", accounts[i].Name+".key")
	}
	var models [][32]byte
	for _, m := range n.engine.Models() {
		if h, err := hex.DecodeString(m.Hash); err == nil && len(h) == 32 {
			models = append(models, [32]byte(h))
		}
	}
	mon, err := setUpMoney(ctx, cfg.DataDir, accounts, simulated.Measurement, models, price.Default, log)
	if err != nil {
		return nil, err
	}
	n.Chain, n.Root = mon.chain, mon.root
	clientKey, err := ClientKey(filepath.Join(cfg.DataDir, "client"))
	if err != nil {
		return nil, err
	}
	var workerNames []string
	for i := range cfg.Workers {
		workerNames = append(workerNames, fmt.Sprintf("worker-%d", i+1))
	}
	if n.ends, err = mon.openChannels(ctx, cfg.DataDir, clientKey, workerNames); err != nil {
		return nil, err
	}
	// Serve the chain on loopback, so `cocoon status` and the money commands
	// can read it while this process holds it.
	cln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("up: chain listener: %w", err)
	}
	n.chainLn = cln
	mon.manifest.ChainURL = "http://" + cln.Addr().String()
	n.manifest = &mon.manifest
	mux := http.NewServeMux()
	mux.Handle("/", local.Handler(n.Chain))
	mux.HandleFunc("GET "+statusPath, func(w http.ResponseWriter, r *http.Request) {
		st, err := n.Status(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(st)
	})
	lim := serve.DefaultLimits()
	go serve.Server(mux, lim, log).Serve(serve.Limit(cln, lim))
	if err := mon.writeManifest(cfg.DataDir); err != nil {
		return nil, err
	}
	measurements, allowedModels, err := RootPolicy(ctx, n.Chain, n.Root)
	if err != nil {
		return nil, err
	}
	trust := Trust{SimulatedRoots: []string{rootPath}, SimulatedMeasurements: measurements, Models: allowedModels}
	vals, err := n.Chain.RunGetMethod(ctx, n.Root, "get_params")
	if err != nil {
		return nil, fmt.Errorf("up: reading the root's prices: %w", err)
	}
	params, err := contracts.ParseParams(vals)
	if err != nil {
		return nil, fmt.Errorf("up: reading the root's prices: %w", err)
	}
	pcfg := ProxyDefaults()
	pcfg.WorkerFee = params.WorkerFee
	// Each request in flight holds its worst case (tens of millions of
	// nanoTON without max_tokens) against the client's credit: let the one
	// client of a local network keep many in flight, against half its deposit.
	pcfg.CreditLimit = upDeposit / 2
	n.Proxy, err = StartProxy(ProxyConfig{
		DataDir: filepath.Join(cfg.DataDir, "proxy"), Listen: "127.0.0.1:0", WorkerListen: "127.0.0.1:0", Trust: trust,
		Proxy: pcfg, Ops: Ops{Registry: n.Registry},
		Payments: &proxy.Payments{Chain: n.Chain, Wallet: mon.wallets["proxy"],
			Clients: []*payments.Payee{n.ends.proxyPayee}, Workers: n.ends.workerPayers,
			MinCloseDelay: params.ClientCloseDelay, WorkerCloseDelay: params.WorkerCloseDelay},
	}, log.With("role", "proxy"))
	if err != nil {
		return nil, err
	}
	for i := range cfg.Workers {
		name := fmt.Sprintf("worker-%d", i+1)
		w, err := NewWorker(WorkerConfig{
			DataDir:      filepath.Join(cfg.DataDir, name),
			Worker:       worker.Config{Name: name, Proxy: n.Proxy.WorkerAddr, ProxyPin: n.Proxy.Pin},
			SimulatedTEE: vendorDir,
		}, n.engine, log.With("role", name), worker.WithPayments(&worker.Payments{Wallet: mon.wallets[name],
			Channel: n.ends.workerPayees[name], Journal: filepath.Join(cfg.DataDir, name, "books.jsonl"),
			MinCloseDelay: params.WorkerCloseDelay, WorkerFee: params.WorkerFee}),
			worker.WithMetrics(metrics.NewWorker(metrics.ForWorker(n.Registry, name))))
		if err != nil {
			return nil, err
		}
		n.Workers = append(n.Workers, w)
		n.wg.Go(func() { w.Run(ctx) })
	}
	deadline := time.Now().Add(30 * time.Second)
	for n.Proxy.Workers() < cfg.Workers {
		if time.Now().After(deadline) {
			return nil, errors.New("up: workers did not connect to the proxy within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.Client, err = StartClient(ClientConfig{
		DataDir: filepath.Join(cfg.DataDir, "client"), Listen: cfg.Addr, Trust: trust,
		// Requests in flight count at their worst case against the spending
		// cap, as against the proxy's credit: the same room for both.
		Client: client.Config{Proxy: "https://" + n.Proxy.Addr, ProxyPin: n.Proxy.Pin, MaxSpendPerMinute: pcfg.CreditLimit},
		Ops:    Ops{Registry: n.Registry, Metrics: cfg.Ops.Metrics, Pprof: cfg.Ops.Pprof, PprofRemote: cfg.Ops.PprofRemote},
	}, log.With("role", "client"), client.WithPayments(n.ends.clientPayer, payments.StreamConfig{Chain: n.Chain}))
	if err != nil {
		return nil, err
	}
	n.BaseURL = n.Client.BaseURL
	return n, nil
}

// ProxyDefaults is the proxy configuration `cocoon up` and `cocoon proxy`
// start from: a 10% fee and the proxy's default credit limit, which a client
// paying by channel gets only as far as its deposit covers.
func ProxyDefaults() proxy.Config {
	return proxy.Config{FeeBPS: 1000, CreditLimit: proxy.DefaultCreditLimit}
}

// Close stops everything Up started.
//
// The order settles every voucher: the client posts its last one to the
// proxy, the proxy posts its last ones to the workers and claims what the
// client's covers, and the workers, stopping, claim theirs.
func (n *Network) Close() error {
	err := n.closeRoles()
	n.closeChain()
	return err
}

// closeRoles stops the client, the proxy and the workers, settling vouchers.
func (n *Network) closeRoles() error {
	var errs []error
	if n.Client != nil {
		errs = append(errs, n.Client.Close())
	}
	if n.Proxy != nil {
		errs = append(errs, n.Proxy.Close())
	}
	n.cancel()
	n.wg.Wait()
	n.ends.close()
	if n.engine != nil {
		n.engine.Close()
	}
	return errors.Join(errs...)
}

// closeChain stops serving the chain and closes it.
func (n *Network) closeChain() {
	if n.chainLn != nil {
		n.chainLn.Close()
	}
	if n.Chain != nil {
		n.Chain.Close()
	}
}

// SimulatedVendor creates or loads the simulated-TEE vendor in dir, writes
// its root certificate to dir/vendor-root.pem, and returns that path and the
// hex measurement of the simulated image.
func SimulatedVendor(dir string) (rootPath, measurement string, err error) {
	vendor, err := simulated.LoadVendor(dir)
	if err != nil {
		return "", "", err
	}
	rootPath = filepath.Join(dir, "vendor-root.pem")
	if err := os.WriteFile(rootPath, vendor.RootPEM(), 0o644); err != nil {
		return "", "", fmt.Errorf("simulated TEE: %w", err)
	}
	return rootPath, hex.EncodeToString(simulated.Measurement[:]), nil
}
