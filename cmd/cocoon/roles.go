package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/cocoon-go/cocoon/client"
	"github.com/cocoon-go/cocoon/nanoton"
	"github.com/cocoon-go/cocoon/node"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/worker"
)

func runUp(ctx context.Context, args []string) error {
	fs, verbose := newFlags("up", "Runs a whole Cocoon network in one process: a local chain with the root contract,\na proxy, workers running the embedded model (or --engine-url) in a SIMULATED TEE,\nand a client serving the OpenAI API.")
	cfg := node.UpConfig{Progress: os.Stderr}
	fs.StringVar(&cfg.DataDir, "data-dir", defaultDir("up"), "directory for keys and accounts (kept across starts)")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:10000", "address of the client's OpenAI API")
	fs.IntVar(&cfg.Workers, "workers", 2, "number of workers")
	fs.StringVar(&cfg.Engine.URL, "engine-url", "", "OpenAI-compatible engine all workers front (e.g. http://127.0.0.1:8000/v1); default: the embedded model")
	fs.StringVar(&cfg.Engine.APIKey, "engine-key", "", "API key for --engine-url")
	fs.StringVar(&cfg.Engine.Model, "model", "", "GGUF file for the embedded engine (default: the built-in cocoon-tiny)")
	opsFlags(fs, &cfg.Ops, "default: on the client's OpenAI address and the proxy's client listener")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger(*verbose)
	start := time.Now()
	n, err := node.Up(ctx, cfg, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, `
  Cocoon is up (%s): 1 proxy, %d workers, 1 client.
  WARNING: workers run in a SIMULATED TEE — fine for development, no confidentiality guarantee.

  OpenAI base URL:  %s
  Try:  curl %s/chat/completions -H 'Content-Type: application/json' \
          -d '{"model":"%s","messages":[{"role":"user","content":"Tell me about light"}]}'

  Chain:            local (simulated on this machine, not TON), root contract %s
  Data directory:   %s
  Metrics:          http://%s/metrics (Prometheus; /healthz beside it)
  Press Ctrl-C to stop.

`, time.Since(start).Round(time.Millisecond), len(n.Workers), n.BaseURL, n.BaseURL, firstModel(n), n.Root, cfg.DataDir, n.Client.MetricsAddr)
	showMoney(ctx, n, log)
	log.Info("stopping: settling vouchers on chain")
	if err := n.Close(); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// showMoney logs the channels' vouchers and claims whenever they move,
// until ctx is done.
func showMoney(ctx context.Context, n *node.Network, log *slog.Logger) {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st, err := n.Status(ctx)
		if err != nil {
			continue
		}
		var line []string
		for _, c := range st.Channels {
			line = append(line, fmt.Sprintf("%s→%s voucher %s claimed %s", c.Payer, c.Payee, nanoton.Format(c.VoucherTotal), nanoton.Format(c.Claimed)))
		}
		if now := strings.Join(line, "; "); now != last {
			last = now
			log.Info("payments (TON)", "channels", now)
		}
	}
}

func firstModel(n *node.Network) string {
	for _, w := range n.Workers {
		for _, m := range w.Models() {
			return m
		}
	}
	return "cocoon-tiny"
}

// moneyFlags binds the flags that connect a role to a chain and a wallet;
// call the returned function after parsing.
func moneyFlags(fs *flag.FlagSet, m **node.MoneyConfig, deposit string) func() {
	cur := node.MoneyConfig{}
	if *m != nil {
		cur = **m
	}
	fs.StringVar(&cur.Chain, "chain", cur.Chain, "chain to pay and be paid on: local:DIR, local+http://HOST:PORT, ton:testnet|mainnet|CONFIG (none: run unpaid)")
	fs.StringVar(&cur.WalletKey, "wallet-key", cur.WalletKey, "this role's wallet key file (cocoon wallet new)")
	if deposit != "" {
		fs.StringVar(&cur.Deposit, "deposit", cur.Deposit, deposit+` (TON, "1.5", or nanoTON, "1500000000n")`)
	}
	return func() {
		if cur.Chain != "" {
			*m = &cur
		}
	}
}

// opsFlags binds the flags of what a node serves its operator; where says
// where /metrics and /healthz are served without --metrics.
func opsFlags(fs *flag.FlagSet, o *node.Ops, where string) {
	fs.StringVar(&o.Metrics, "metrics", o.Metrics, "address of a separate listener for Prometheus /metrics and /healthz ("+where+")")
	fs.StringVar(&o.Pprof, "pprof", o.Pprof, "address of a Go pprof listener (/debug/pprof/), loopback only unless --pprof-allow-remote (default: none)")
	fs.BoolVar(&o.PprofRemote, "pprof-allow-remote", o.PprofRemote, "let --pprof listen beyond loopback (profiles show the process's code and memory)")
}

// trustFlags binds the flags that say which workers to accept.
func trustFlags(fs *flag.FlagSet, t *node.Trust) {
	fs.Var((*list)(&t.SimulatedRoots), "trust-simulated-root", "PEM file of a simulated-TEE vendor root to trust (development only; repeatable)")
	fs.Var((*list)(&t.Measurements), "allow-measurement", "hex image hash a worker in a real TEE (TDX, SEV-SNP) may run (repeatable)")
	fs.Var((*list)(&t.SimulatedMeasurements), "allow-simulated-measurement", "hex image hash a worker in a simulated TEE may claim (development only; repeatable)")
	fs.Var((*list)(&t.ConfigDigests), "allow-config", "hex digest of a worker runtime configuration (engine, model map, KEM, prices) to accept, as `cocoon attest verify` prints it (repeatable; none: any)")
	fs.BoolVar(&t.AllowRemoteEngine, "trust-remote-engine", t.AllowRemoteEngine, "accept workers whose engine is outside their machine (it reads every prompt in the clear)")
	fs.Var((*list)(&t.Models), "allow-model", "hex model hash a worker may serve (repeatable; none: any)")
	fs.StringVar(&t.MaxAge, "max-evidence-age", t.MaxAge, "oldest evidence accepted (e.g. 48h)")
	fs.StringVar(&t.Root, "root", t.Root, "root contract whose allow-lists of measurements and models to add (needs --chain)")
	fs.Func("trust-tdx", `accept Intel TDX quotes, with Intel collateral from: a DIR of saved PCS responses, "pcs" (Intel PCS), a PCCS https:// URL, or "shipped" (only the snapshot a worker sends)`, func(s string) error {
		if t.TDX == nil {
			t.TDX = &node.TDXTrust{}
		}
		t.TDX.Collateral = s
		if s == "shipped" {
			t.TDX.Collateral = "" // only the snapshots workers ship, whatever the config file says
		}
		return nil
	})
	fs.Func("trust-sev-snp", `accept AMD SEV-SNP reports, chaining to AMD's roots: "amd" (embedded; missing VCEKs and AMD's CRLs fetched from AMD KDS and cached), "amd-offline" (embedded; nothing fetched, so no revocation check), or a DIR of <line>.pem KDS chains`, func(s string) error {
		if t.SEVSNP == nil {
			t.SEVSNP = &node.SEVSNPTrust{}
		}
		switch s {
		case "amd", "kds":
		case "amd-offline":
			t.SEVSNP.Offline = true
		default:
			t.SEVSNP.Roots = s
		}
		return nil
	})
	fs.Func("trust-sev-snp-min-tcb", `lowest SEV-SNP reported TCB accepted, "bl=N,tee=N,snp=N,ucode=N" or 0xHEX (default: per product line, see docs/attestation.md)`, func(s string) error {
		if t.SEVSNP == nil {
			t.SEVSNP = &node.SEVSNPTrust{}
		}
		t.SEVSNP.MinTCB = s
		return nil
	})
	fs.Func("trust-gpu", "verify NVIDIA GPU evidence with NVIDIA attestation service (NRAS) signing keys pinned in this JWKS FILE", func(s string) error {
		t.GPU = &node.GPUTrust{NRASKeys: s}
		return nil
	})
	fs.BoolVar(&t.RequireGPU, "require-gpu", t.RequireGPU, "refuse workers without verified confidential-computing GPU evidence (needs --trust-gpu)")
}

func runProxy(ctx context.Context, args []string) error {
	cfg := node.ProxyConfig{DataDir: defaultDir("proxy"), Listen: "127.0.0.1:10443", WorkerListen: "127.0.0.1:10444", Proxy: node.ProxyDefaults()}
	if p := configPath(args); p != "" {
		if err := node.LoadConfig(p, &cfg); err != nil {
			return err
		}
	}
	fs, verbose := newFlags("proxy", "Runs a proxy: workers dial --worker-listen and are admitted on their evidence;\nclients send sealed requests to --listen.")
	fs.String("config", "", "JSON config file (flags override it)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the TLS key and the ledger")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "address for clients (TLS)")
	fs.StringVar(&cfg.WorkerListen, "worker-listen", cfg.WorkerListen, "address workers dial (TLS)")
	fs.Uint64Var(&cfg.Proxy.FeeBPS, "fee-bps", cfg.Proxy.FeeBPS, "proxy's share of each cost in 1/10000")
	fs.Uint64Var(&cfg.Proxy.CreditLimit, "credit-limit", cfg.Proxy.CreditLimit, "nanoTON a client may leave unpaid, requests in flight included; a client paying by channel gets at most its deposit not yet covered by vouchers")
	fs.Func("client", "hex account key of a client this proxy serves without payment channels, up to --credit-limit (repeatable; with --chain any client with an open channel is served)", func(s string) error {
		if b, err := hex.DecodeString(s); err != nil || len(b) != ed25519.PublicKeySize {
			return fmt.Errorf("--client %q: want 64 hex digits, an Ed25519 public key", s)
		}
		cfg.Proxy.Clients = append(cfg.Proxy.Clients, strings.ToLower(s))
		return nil
	})
	trustFlags(fs, &cfg.Trust)
	opsFlags(fs, &cfg.Ops, "default: on --listen, the clients' port")
	money := moneyFlags(fs, &cfg.Money, "deposit of the channel opened to each new worker")
	if err := fs.Parse(args); err != nil {
		return err
	}
	money()
	p, err := node.StartProxy(cfg, newLogger(*verbose))
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "proxy ready: clients https://%s, workers %s, pin %s\n", p.Addr, p.WorkerAddr, p.Pin)
	<-ctx.Done()
	return p.Close()
}

func runWorker(ctx context.Context, args []string) error {
	cfg := node.WorkerConfig{DataDir: defaultDir("worker")}
	cfg.Worker.Price = price.Default
	cfg.Engine.Models = map[string]string{}
	if p := configPath(args); p != "" {
		if err := node.LoadConfig(p, &cfg); err != nil {
			return err
		}
	}
	if cfg.Engine.Models == nil {
		cfg.Engine.Models = map[string]string{}
	}
	fs, verbose := newFlags("worker", "Runs a worker: dials --proxy, publishes keys attested by the TEE it runs in (TDX or SEV-SNP, found\nthrough configfs-tsm or the guest devices; --simulated-tee for development), opens sealed requests\nand runs them on the embedded model or an OpenAI-compatible engine (--engine-url).")
	fs.String("config", "", "JSON config file (flags override it)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the worker's keys")
	fs.StringVar(&cfg.Worker.Name, "name", cfg.Worker.Name, "name shown in logs")
	fs.StringVar(&cfg.Worker.Proxy, "proxy", cfg.Worker.Proxy, "proxy's worker address HOST:PORT (required)")
	fs.StringVar(&cfg.Worker.ProxyPin, "proxy-pin", cfg.Worker.ProxyPin, "hex SHA-256 of the proxy's TLS key (printed by the proxy)")
	fs.IntVar(&cfg.Worker.Capacity, "capacity", cfg.Worker.Capacity, "requests served at once (0: 4)")
	fs.Uint64Var(&cfg.Worker.Price.PerToken, "price-per-token", cfg.Worker.Price.PerToken, "base price, nanoTON per token")
	fs.Uint64Var(&cfg.Worker.Price.PromptMul, "prompt-mul", cfg.Worker.Price.PromptMul, "prompt token multiplier (10000 = 1x)")
	fs.Uint64Var(&cfg.Worker.Price.CachedMul, "cached-mul", cfg.Worker.Price.CachedMul, "cached prompt token multiplier (10000 = 1x)")
	fs.Uint64Var(&cfg.Worker.Price.CompletionMul, "completion-mul", cfg.Worker.Price.CompletionMul, "completion token multiplier (10000 = 1x)")
	fs.StringVar(&cfg.Engine.URL, "engine-url", cfg.Engine.URL, "OpenAI-compatible engine (vLLM, SGLang, llama.cpp, Ollama), e.g. http://127.0.0.1:8000/v1")
	fs.StringVar(&cfg.Engine.APIKey, "engine-key", cfg.Engine.APIKey, "API key for --engine-url")
	fs.Var(mapFlag(cfg.Engine.Models), "engine-model", "NAME=UPSTREAM: serve the engine's UPSTREAM model as NAME (repeatable)")
	fs.BoolVar(&cfg.Engine.CacheSalt, "cache-salt", cfg.Engine.CacheSalt, "send a per-client cache_salt (vLLM) so tenants cannot time each other's prefix cache")
	fs.StringVar(&cfg.Engine.Model, "model", cfg.Engine.Model, "GGUF file for the embedded engine (default: the built-in cocoon-tiny)")
	fs.BoolVar(&cfg.Worker.AllowRemoteEngine, "allow-remote-engine", cfg.Worker.AllowRemoteEngine, "let --engine-url point outside this machine (not a loopback IP or unix socket): prompts then leave the TEE in the clear; the endpoint is attested, and clients refuse it by default")
	fs.StringVar(&cfg.SimulatedTEE, "simulated-tee", cfg.SimulatedTEE, "directory of a simulated-TEE vendor seed (development only; without it the worker uses the TEE it runs in, and refuses to start without one)")
	fs.StringVar(&cfg.GPU, "gpu", cfg.GPU, `"nvml": add evidence of this machine's NVIDIA GPUs in confidential-computing mode, verified by NVIDIA's attestation service (binary built with -tags nvml)`)
	fs.StringVar(&cfg.NRASURL, "nras-url", cfg.NRASURL, "NVIDIA attestation service endpoint for --gpu (default: NVIDIA's public NRAS)")
	fs.StringVar(&cfg.TDXCollateral, "tdx-collateral", cfg.TDXCollateral, `on a TDX guest, ship a snapshot of Intel's collateral with each quote, fetched from "pcs" (Intel PCS), a PCCS https:// URL, or a DIR`)
	fs.StringVar(&cfg.Root, "root", cfg.Root, "root contract address: the worker fee proxies pay and the shortest close delay of their channels (with --chain)")
	opsFlags(fs, &cfg.Ops, "default: none, a worker has no listener")
	money := moneyFlags(fs, &cfg.Money, "")
	if err := fs.Parse(args); err != nil {
		return err
	}
	money()
	if cfg.Worker.Proxy == "" {
		return fmt.Errorf("--proxy is required")
	}
	log := newLogger(*verbose)
	eng, err := node.OpenEngine(ctx, cfg.Engine, os.Stderr, log)
	if err != nil {
		return err
	}
	defer eng.Close()
	var opts []worker.Option
	if cfg.Money != nil {
		pm, closer, err := node.WorkerMoney(ctx, cfg.DataDir, cfg.Root, cfg.Money, log)
		if err != nil {
			return err
		}
		defer closer.Close()
		opts = append(opts, worker.WithPayments(pm))
	}
	return node.RunWorker(ctx, cfg, eng, log, opts...)
}

func runClient(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "new-key" {
		return runClientNewKey(args[1:])
	}
	if len(args) > 0 && args[0] == "account" {
		return runClientAccount(args[1:])
	}
	cfg := node.ClientConfig{DataDir: defaultDir("client"), Listen: "127.0.0.1:10000"}
	cfg.Client.MaxPrice = client.DefaultMaxPrice
	if p := configPath(args); p != "" {
		if err := node.LoadConfig(p, &cfg); err != nil {
			return err
		}
	}
	fs, verbose := newFlags("client", "Runs a client: serves the OpenAI API on --addr and sends sealed requests through --proxy.")
	fs.String("config", "", "JSON config file (flags override it)")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for the client's key and receipts")
	fs.StringVar(&cfg.Listen, "addr", cfg.Listen, "address of the OpenAI API")
	fs.StringVar(&cfg.Client.Proxy, "proxy", cfg.Client.Proxy, "proxy URL, e.g. https://127.0.0.1:10443 (required)")
	fs.StringVar(&cfg.Client.ProxyPin, "proxy-pin", cfg.Client.ProxyPin, "hex SHA-256 of the proxy's TLS key (printed by the proxy)")
	fs.IntVar(&cfg.Client.Fanout, "fanout", cfg.Client.Fanout, "workers each request is sealed to (0: 3)")
	fs.Uint64Var(&cfg.Client.MaxPrice.PerToken, "max-price-per-token", cfg.Client.MaxPrice.PerToken, "most nanoTON paid per token of any kind")
	fs.Var(amountFlag{&cfg.Client.MaxRequestCost}, "max-request-cost", "refuse a request that may cost more (its prompt and max_tokens at the price cap), AMOUNT; default 1 TON")
	fs.Var(amountFlag{&cfg.Client.MaxSpendPerMinute}, "max-spend-per-minute", "most spent in a minute, requests in flight counted at their worst case, AMOUNT; default 5 TON")
	fs.Func("api-keys", "JSON file of API keys apps must present (Authorization: Bearer), each with a spending limit; required to listen beyond loopback (make one: cocoon client new-key)", func(path string) error {
		keys, err := client.LoadAPIKeys(path)
		cfg.Client.APIKeys = append(cfg.Client.APIKeys, keys...)
		return err
	})
	trustFlags(fs, &cfg.Trust)
	opsFlags(fs, &cfg.Ops, "default: on --addr, the OpenAI address")
	money := moneyFlags(fs, &cfg.Money, "deposit of the channel opened to the proxy if there is none")
	if err := fs.Parse(args); err != nil {
		return err
	}
	money()
	if cfg.Client.Proxy == "" {
		return fmt.Errorf("--proxy is required")
	}
	c, err := node.StartClient(cfg, newLogger(*verbose))
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "client ready: OpenAI base URL %s\n", c.BaseURL)
	<-ctx.Done()
	return c.Close()
}

func runClientAccount(args []string) error {
	fs, _ := newFlags("client account", "Prints the client's account key (hex), making it on first use: a proxy without a chain serves\nthe clients it is started with (cocoon proxy --client KEY).")
	dir := fs.String("data-dir", defaultDir("client"), "the client's data directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	key, err := node.ClientKey(*dir)
	if err != nil {
		return err
	}
	fmt.Println(hex.EncodeToString(key.Public().(ed25519.PublicKey)))
	return nil
}

func runClientNewKey(args []string) error {
	fs, _ := newFlags("client new-key", "Makes an API key for an app of the client, adds its hash to --api-keys FILE, and prints the key\n(it is kept nowhere else). Start the client with --api-keys FILE.")
	file := fs.String("api-keys", "", "the client's API keys file (required; created if missing)")
	name := fs.String("name", "", "name of the key, e.g. the app's (required)")
	var limit uint64
	fs.Var(amountFlag{&limit}, "limit", "AMOUNT the key may spend in all (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" || *name == "" || limit == 0 {
		return fmt.Errorf("--api-keys, --name and --limit are required")
	}
	key, err := client.AddAPIKey(*file, *name, limit)
	if err != nil {
		return err
	}
	fmt.Println(key)
	return nil
}

func runSimulatedTEE(ctx context.Context, args []string) error {
	fs, _ := newFlags("simulated-tee DIR", "Creates a simulated-TEE vendor in DIR (or loads the one there) and writes its root\ncertificate to DIR/vendor-root.pem. DEVELOPMENT ONLY: whoever reads DIR can forge evidence.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("want exactly one directory")
	}
	root, m, err := node.SimulatedVendor(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Printf("vendor root:  %s\nmeasurement:  %s\n\nworkers:          --simulated-tee %s\nproxies, clients: --trust-simulated-root %s --allow-simulated-measurement %s\n",
		root, m, fs.Arg(0), root, m)
	return nil
}
