package main

import (
	"context"
	"encoding/hex"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/nanoton"
	"github.com/cocoon-go/cocoon/node"
	"github.com/cocoon-go/cocoon/price"
)

const rootHelp = `Usage: cocoon root COMMAND [flags]

  deploy              deploy a root contract owned by the wallet of --key; prints its address
  show                print a root's owner, prices, allow-lists and proxies
  allow-measurement   allow (or with --remove disallow) a worker (or with --proxy a proxy) TEE measurement
  allow-model         allow (or with --remove disallow) a model hash
  set-prices          change prices, stakes and close delays (flags not given keep their values)

The root contract holds the network's parameters; only its owner changes them. Every command takes
--chain and --json, the owner's commands --key and --root ADDR; run 'cocoon root COMMAND --help'.
`

// opValue is what an owner operation carries for its gas; the contract sends
// back what it does not use.
const opValue = contracts.ClaimValue

func runRoot(ctx context.Context, args []string) error {
	return runSub(ctx, "root", rootHelp, map[string]func(context.Context, []string) error{
		"deploy": runRootDeploy, "show": runRootShow, "allow-measurement": runRootAllowMeasurement,
		"allow-model": runRootAllowModel, "set-prices": runRootSetPrices,
	}, args)
}

// paramFlags binds the flags of each root parameter to p.
func paramFlags(fs *flag.FlagSet, p *contracts.Params) {
	fs.Uint64Var(&p.BasePrice, "price-per-token", p.BasePrice, "base price, integer nanoTON per token")
	fs.Uint64Var(&p.WorkerFee, "worker-fee", p.WorkerFee, "what a proxy pays its workers, integer nanoTON per token")
	uint32Flag(fs, &p.PromptMultiplier, "prompt-mul", "prompt token multiplier (10000 = 1x)")
	uint32Flag(fs, &p.CachedMultiplier, "cached-mul", "cached prompt token multiplier (10000 = 1x)")
	uint32Flag(fs, &p.CompletionMultiplier, "completion-mul", "completion token multiplier (10000 = 1x)")
	fs.Var(amountFlag{&p.MinProxyStake}, "min-proxy-stake", "minimum proxy stake, AMOUNT")
	fs.Var(amountFlag{&p.MinWorkerStake}, "min-worker-stake", "minimum worker stake, AMOUNT")
	fs.DurationVar(&p.ClientCloseDelay, "client-close-delay", p.ClientCloseDelay, "close delay of client→proxy channels (whole seconds)")
	fs.DurationVar(&p.WorkerCloseDelay, "worker-close-delay", p.WorkerCloseDelay, "close delay of proxy→worker channels (whole seconds)")
}

// uint32Flag declares a uint32 flag.
func uint32Flag(fs *flag.FlagSet, p *uint32, name, usage string) {
	fs.Var((*uint32Value)(p), name, usage)
}

type uint32Value uint32

func (v *uint32Value) String() string { return strconv.FormatUint(uint64(*v), 10) }
func (v *uint32Value) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("want an integer below 2^32")
	}
	*v = uint32Value(n)
	return nil
}

func runRootDeploy(ctx context.Context, args []string) error {
	m := newMoneyCmd("root deploy", "Deploys a root contract owned by the wallet of --key, with the parameters of the flags, and\nprints its address. The address follows from the owner and the parameters, so deploying the same twice\nis refused. Allow measurements and models afterwards with allow-measurement and allow-model.", true)
	p := node.RootParams(price.Default)
	paramFlags(m.fs, &p)
	value := contracts.ClaimValue * 2
	m.fs.Var(amountFlag{&value}, "value", "AMOUNT sent with the deploy, kept by the root for its storage fees")
	if _, err := m.parse(args, 0, 0); err != nil {
		return err
	}
	w, err := m.startWallet(ctx)
	defer m.stop()
	if err != nil {
		return err
	}
	cfg := contracts.RootConfig{Owner: w.Address(), Params: p}
	si, err := cfg.StateInit()
	if err != nil {
		return err
	}
	addr, err := cfg.Address()
	if err != nil {
		return err
	}
	if acc, err := m.chain.Account(m.ctx, addr); err != nil {
		return err
	} else if acc.Active() {
		return fmt.Errorf("a root with this owner and these parameters is already deployed at %s", m.addr(addr))
	}
	// An empty body: the root accepts it from anyone, as a top-up for storage.
	sent, err := contracts.Send(m.ctx, w, chain.Transfer{To: addr, Amount: value, StateInit: si, Body: cell.BeginCell().EndCell()})
	if err != nil {
		return err
	}
	if _, err := contracts.ActiveAccount(m.ctx, m.chain, "root", addr); err != nil {
		return err
	}
	return m.print(struct {
		Chain   string `json:"chain"`
		Address string `json:"address"`
		Owner   string `json:"owner"`
		sentJSON
	}{m.chain.Name(), m.addr(addr), m.addr(w.Address()), sentOf(sent)},
		fmt.Sprintf("root deployed at %s\nowner: %s\nuse it with: --root %s\n", m.addr(addr), m.addr(w.Address()), m.addr(addr)))
}

// rootFlag declares --root.
func rootFlag(m *moneyCmd) *string {
	return m.fs.String("root", "", "address of the root contract (required)")
}

// rootAddr parses --root.
func rootAddr(s string) (*address.Address, error) {
	if s == "" {
		return nil, fmt.Errorf("--root ADDR is required")
	}
	return chain.ParseAddress(s)
}

// readRoot reads the root at addr from its data.
func (m *moneyCmd) readRoot(addr *address.Address) (*contracts.RootConfig, uint64, error) {
	acc, err := contracts.ActiveAccount(m.ctx, m.chain, "root", addr)
	if err != nil {
		return nil, 0, err
	}
	cfg, err := contracts.ParseRootData(acc.Data)
	if err != nil {
		return nil, 0, fmt.Errorf("root %s: %w", m.addr(addr), err)
	}
	return cfg, acc.Balance, nil
}

// paramsJSON is contracts.Params in JSON: amounts in nanoTON, delays in seconds.
type paramsJSON struct {
	PricePerToken        uint64 `json:"price_per_token"`
	WorkerFee            uint64 `json:"worker_fee"`
	PromptMultiplier     uint32 `json:"prompt_multiplier"`
	CachedMultiplier     uint32 `json:"cached_multiplier"`
	CompletionMultiplier uint32 `json:"completion_multiplier"`
	MinProxyStake        uint64 `json:"min_proxy_stake"`
	MinWorkerStake       uint64 `json:"min_worker_stake"`
	ClientCloseDelaySecs int64  `json:"client_close_delay_s"`
	WorkerCloseDelaySecs int64  `json:"worker_close_delay_s"`
}

type proxyJSON struct {
	Address   string `json:"address"`
	PublicKey string `json:"public_key"`
	Endpoint  string `json:"endpoint"`
}

func runRootShow(ctx context.Context, args []string) error {
	m := newMoneyCmd("root show", "Prints a root's owner, prices, allow-lists and registered proxies.", false)
	root := rootFlag(m)
	if _, err := m.parse(args, 0, 0); err != nil {
		return err
	}
	addr, err := m.startAt(ctx, *root, rootAddr)
	defer m.stop()
	if err != nil {
		return err
	}
	cfg, balance, err := m.readRoot(addr)
	if err != nil {
		return err
	}
	p := cfg.Params
	out := struct {
		Chain              string      `json:"chain"`
		Address            string      `json:"address"`
		Owner              string      `json:"owner"`
		Balance            uint64      `json:"balance"`
		Params             paramsJSON  `json:"params"`
		WorkerMeasurements []string    `json:"worker_measurements"`
		ProxyMeasurements  []string    `json:"proxy_measurements"`
		Models             []string    `json:"models"`
		Proxies            []proxyJSON `json:"proxies"`
	}{
		Chain: m.chain.Name(), Address: m.addr(addr), Owner: m.addr(cfg.Owner), Balance: balance,
		Params: paramsJSON{p.BasePrice, p.WorkerFee, p.PromptMultiplier, p.CachedMultiplier, p.CompletionMultiplier,
			p.MinProxyStake, p.MinWorkerStake, int64(p.ClientCloseDelay / time.Second), int64(p.WorkerCloseDelay / time.Second)},
		WorkerMeasurements: sortedHex(cfg.WorkerMeasurements),
		ProxyMeasurements:  sortedHex(cfg.ProxyMeasurements),
		Models:             sortedHex(cfg.Models),
		Proxies:            []proxyJSON{},
	}
	for _, px := range cfg.Proxies {
		out.Proxies = append(out.Proxies, proxyJSON{m.addr(px.Address), hex.EncodeToString(px.PublicKey), px.Endpoint})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "root:     %s (%s)\nowner:    %s\nbalance:  %s TON\n", out.Address, out.Chain, out.Owner, nanoton.Format(balance))
	fmt.Fprintf(&b, "prices:   %d nanoTON per token; workers get %d per token; multipliers prompt %d, cached %d, completion %d (10000 = 1x)\n",
		p.BasePrice, p.WorkerFee, p.PromptMultiplier, p.CachedMultiplier, p.CompletionMultiplier)
	fmt.Fprintf(&b, "stakes:   proxies %s TON, workers %s TON\n", nanoton.Format(p.MinProxyStake), nanoton.Format(p.MinWorkerStake))
	fmt.Fprintf(&b, "closing:  client channels %v, worker channels %v\n", p.ClientCloseDelay, p.WorkerCloseDelay)
	list := func(name string, hs []string) {
		fmt.Fprintf(&b, "%s (%d)\n", name, len(hs))
		for _, h := range hs {
			fmt.Fprintf(&b, "  %s\n", h)
		}
	}
	list("worker measurements", out.WorkerMeasurements)
	list("proxy measurements", out.ProxyMeasurements)
	list("models", out.Models)
	fmt.Fprintf(&b, "proxies (%d)\n", len(out.Proxies))
	for _, px := range out.Proxies {
		fmt.Fprintf(&b, "  %s  %s  key %s\n", px.Address, px.Endpoint, px.PublicKey)
	}
	return m.print(out, b.String())
}

// ownerOp sends the body that body builds from the root's current state, from the owner's wallet to the
// root at --root, and waits until the root has applied it.
func (m *moneyCmd) ownerOp(ctx context.Context, root string, body func(cur *contracts.RootConfig, queryID uint64) (*cell.Cell, error), done string) error {
	addr, err := m.startAt(ctx, root, rootAddr)
	defer m.stop()
	if err != nil {
		return err
	}
	w, err := m.wallet()
	if err != nil {
		return err
	}
	cur, _, err := m.readRoot(addr)
	if err != nil {
		return err
	}
	if !cur.Owner.Equals(w.Address()) {
		return fmt.Errorf("wallet %s is not the owner of root %s (the owner is %s)", m.addr(w.Address()), m.addr(addr), m.addr(cur.Owner))
	}
	b, err := body(cur, queryID())
	if err != nil {
		return err
	}
	sent, err := contracts.Send(m.ctx, w, chain.Transfer{To: addr, Amount: opValue, Bounce: true, Body: b})
	if err != nil {
		return err
	}
	return m.print(struct {
		Chain string `json:"chain"`
		Root  string `json:"root"`
		Done  string `json:"done"`
		sentJSON
	}{m.chain.Name(), m.addr(addr), done, sentOf(sent)},
		fmt.Sprintf("%s on root %s (fees %s TON)\n", done, m.addr(addr), nanoton.Format(sent.Fees())))
}

// queryID tags a message so that its answer can be told from others'; the time is unique enough for
// one person at a command line.
func queryID() uint64 { return uint64(time.Now().UnixNano()) }

func runRootAllowMeasurement(ctx context.Context, args []string) error {
	m := newMoneyCmd("root allow-measurement HASH", "Allows the TEE measurement HASH (64 hex digits) for workers, or with --proxy for proxies;\nwith --remove, disallows it. Sent from the owner's wallet (--key).", true)
	root := rootFlag(m)
	proxy := m.fs.Bool("proxy", false, "a proxy measurement instead of a worker measurement")
	remove := m.fs.Bool("remove", false, "disallow instead of allow")
	h, hash, err := m.parseHash(args, "measurement")
	if err != nil {
		return err
	}
	what, build := "worker measurement", contracts.SetWorkerMeasurementBody
	if *proxy {
		what, build = "proxy measurement", contracts.SetProxyMeasurementBody
	}
	return m.ownerOp(ctx, *root, func(_ *contracts.RootConfig, q uint64) (*cell.Cell, error) {
		return build(q, h, !*remove), nil
	}, allowed(what, hash, !*remove))
}

func runRootAllowModel(ctx context.Context, args []string) error {
	m := newMoneyCmd("root allow-model HASH", "Allows the model HASH (64 hex digits); with --remove, disallows it. Sent from the owner's\nwallet (--key).", true)
	root := rootFlag(m)
	remove := m.fs.Bool("remove", false, "disallow instead of allow")
	h, hash, err := m.parseHash(args, "model hash")
	if err != nil {
		return err
	}
	return m.ownerOp(ctx, *root, func(_ *contracts.RootConfig, q uint64) (*cell.Cell, error) {
		return contracts.SetModelBody(q, h, !*remove), nil
	}, allowed("model", hash, !*remove))
}

// parseHash parses args, which must be HASH, the what as 64 hex digits.
func (m *moneyCmd) parseHash(args []string, what string) ([32]byte, string, error) {
	pos, err := m.parse(args, 1, 1)
	if err != nil {
		return [32]byte{}, "", err
	}
	h, err := hash32(what, pos[0])
	return h, pos[0], err
}

// allowed says what an allow-… command did.
func allowed(what, hash string, allow bool) string {
	if allow {
		return fmt.Sprintf("allowed %s %s", what, hash)
	}
	return fmt.Sprintf("disallowed %s %s", what, hash)
}

func runRootSetPrices(ctx context.Context, args []string) error {
	m := newMoneyCmd("root set-prices", "Changes the root's prices, stakes and close delays: the flags given replace those values,\nthe others keep theirs. Sent from the owner's wallet (--key).\n"+amountHelp, true)
	root := rootFlag(m)
	var given contracts.Params
	paramFlags(m.fs, &given)
	// Their zero values are not defaults here: a flag not given keeps the root's value.
	onlyParams := flag.NewFlagSet("", flag.ContinueOnError)
	paramFlags(onlyParams, &contracts.Params{})
	onlyParams.VisitAll(func(f *flag.Flag) { m.fs.Lookup(f.Name).DefValue = "" })
	if _, err := m.parse(args, 0, 0); err != nil {
		return err
	}
	// The flags given, applied again on top of the root's current parameters once they are read.
	set := map[string]string{}
	m.fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	return m.ownerOp(ctx, *root, func(cur *contracts.RootConfig, q uint64) (*cell.Cell, error) {
		p := cur.Params
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		paramFlags(fs, &p)
		for name, v := range set {
			if fs.Lookup(name) != nil {
				if err := fs.Set(name, v); err != nil {
					return nil, err
				}
			}
		}
		return contracts.SetParamsBody(q, p)
	}, "set prices")
}
