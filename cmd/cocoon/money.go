package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/chain/chainspec"
	"github.com/cocoon-go/cocoon/chain/local"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/nanoton"
)

// amountHelp is the amount convention, repeated in the help of every command that takes one.
const amountHelp = "AMOUNT is TON as a decimal with at most 9 decimals (1.5, 20, 0.000000001) or nanoTON as an\ninteger followed by n (1500000000n); it is read with integer arithmetic only."

// runSub runs the subcommand of a command group ("wallet new" ...) named by args[0].
func runSub(ctx context.Context, group, help string, subs map[string]func(context.Context, []string) error, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(os.Stderr, help)
		if len(args) == 0 {
			return fmt.Errorf("want a subcommand")
		}
		return flag.ErrHelp
	}
	run, ok := subs[args[0]]
	if !ok {
		fmt.Fprint(os.Stderr, help)
		return fmt.Errorf("unknown subcommand %q", group+" "+args[0])
	}
	return run(ctx, args[1:])
}

// moneyCmd is one money command: its flags and, once started, its chain.
type moneyCmd struct {
	fs      *flag.FlagSet
	spec    string
	key     string
	json    bool
	verbose *bool
	timeout time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	chain  chain.Chain
	closer io.Closer
	pub    ed25519.PublicKey // of --key, once wallet has loaded it
}

// newMoneyCmd declares the flags every money command has: --chain, --json, --timeout, --verbose and,
// with withKey, --key.
func newMoneyCmd(name, summary string, withKey bool) *moneyCmd {
	m := &moneyCmd{}
	m.fs, m.verbose = newFlags(name, summary)
	m.fs.StringVar(&m.spec, "chain", "local:"+defaultDir("chain"), "chain: "+chainspec.Help)
	m.fs.BoolVar(&m.json, "json", false, "print one JSON object, amounts as integer nanoTON")
	m.fs.DurationVar(&m.timeout, "timeout", 2*time.Minute, "give up waiting for the chain after this long")
	if withKey {
		m.fs.StringVar(&m.key, "key", filepath.Join(defaultDir("wallet"), "key.pem"), "Ed25519 key file of the wallet that signs (PEM)")
	}
	return m
}

// parse parses args, flags and positional arguments in any order, and wants between lo and hi
// positional ones.
func (m *moneyCmd) parse(args []string, lo, hi int) ([]string, error) {
	var pos []string
	for {
		if err := m.fs.Parse(args); err != nil {
			return nil, err
		}
		if m.fs.NArg() == 0 {
			break
		}
		if i := len(args) - m.fs.NArg() - 1; i >= 0 && args[i] == "--" { // everything after -- is positional
			pos = append(pos, m.fs.Args()...)
			break
		}
		pos = append(pos, m.fs.Arg(0))
		args = m.fs.Args()[1:]
	}
	if len(pos) < lo || len(pos) > hi {
		m.fs.Usage()
		if lo == hi {
			return nil, fmt.Errorf("want %d arguments, got %d", lo, len(pos))
		}
		return nil, fmt.Errorf("want %d to %d arguments, got %d", lo, hi, len(pos))
	}
	return pos, nil
}

// start opens the chain; stop closes it.
func (m *moneyCmd) start(ctx context.Context) error {
	m.log = newLogger(*m.verbose)
	m.ctx, m.cancel = context.WithTimeout(ctx, m.timeout)
	c, closer, err := chainspec.Open(m.ctx, m.spec, m.log)
	if err != nil {
		m.cancel()
		return err
	}
	m.chain, m.closer = c, closer
	return nil
}

func (m *moneyCmd) stop() {
	if m.closer != nil {
		if err := m.closer.Close(); err != nil {
			m.log.Error("closing the chain", "err", err)
		}
	}
	if m.cancel != nil {
		m.cancel()
	}
}

// wallet loads the wallet of --key.
func (m *moneyCmd) wallet() (*chain.Wallet, error) {
	key, err := identity.LoadWalletKey(m.key)
	if err != nil {
		return nil, err
	}
	m.pub = key.Public().(ed25519.PublicKey)
	return chain.NewWallet(m.chain, key)
}

// startWallet opens the chain and loads the wallet of --key. Call stop afterwards, whether it failed or not.
func (m *moneyCmd) startWallet(ctx context.Context) (*chain.Wallet, error) {
	if err := m.start(ctx); err != nil {
		return nil, err
	}
	return m.wallet()
}

// startAt parses the address s with parse, then opens the chain. Call stop afterwards, whether it failed
// or not.
func (m *moneyCmd) startAt(ctx context.Context, s string, parse func(string) (*address.Address, error)) (*address.Address, error) {
	addr, err := parse(s)
	if err != nil {
		return nil, err
	}
	return addr, m.start(ctx)
}

// parseAddrAmount parses args, which must be ADDR AMOUNT.
func (m *moneyCmd) parseAddrAmount(args []string) (*address.Address, uint64, error) {
	pos, err := m.parse(args, 2, 2)
	if err != nil {
		return nil, 0, err
	}
	to, err := chain.ParseAddress(pos[0])
	if err != nil {
		return nil, 0, err
	}
	amount, err := nanoton.Parse(pos[1])
	return to, amount, err
}

// addr shows a in the user-friendly form of this chain (testnet-only on testnet).
func (m *moneyCmd) addr(a *address.Address) string {
	if a == nil {
		return ""
	}
	return a.Copy().Testnet(m.chain.Name() == "ton:testnet").String()
}

// print writes v as JSON with --json, and human otherwise.
func (m *moneyCmd) print(v any, human string) error {
	if !m.json {
		_, err := fmt.Print(human)
		return err
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// amountFlag is a flag holding nanoTON, set with the AMOUNT convention.
type amountFlag struct{ n *uint64 }

func (f amountFlag) String() string {
	if f.n == nil {
		return ""
	}
	return nanoton.Format(*f.n)
}

func (f amountFlag) Set(s string) error {
	n, err := nanoton.Parse(s)
	if err != nil {
		return err
	}
	*f.n = n
	return nil
}

// hash32 reads 32 bytes of hex.
func hash32(what, s string) ([32]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return [32]byte{}, fmt.Errorf("%s %q: want 64 hex digits", what, s)
	}
	return [32]byte(b), nil
}

// txJSON names a transaction.
type txJSON struct {
	LT   uint64 `json:"lt"`
	Hash string `json:"hash"`
}

func txOf(t *chain.Transaction) txJSON { return txJSON{LT: t.LT, Hash: hex.EncodeToString(t.Hash)} }

// sentJSON is what a send cost in all, and the wallet's transaction that made it.
type sentJSON struct {
	Fees uint64 `json:"fees"`
	Tx   txJSON `json:"transaction"`
}

func sentOf(s *contracts.Sent) sentJSON { return sentJSON{Fees: s.Fees(), Tx: txOf(s.Wallet)} }

// status names an account status in lower case words.
func status(s tlb.AccountStatus) string {
	switch s {
	case tlb.AccountStatusActive:
		return "active"
	case tlb.AccountStatusUninit:
		return "uninit"
	case tlb.AccountStatusFrozen:
		return "frozen"
	}
	return "nonexist"
}

const chainHelp = `Usage: cocoon chain COMMAND [flags]

  serve    serve a local chain over HTTP so that separate processes share it
  faucet   credit an address on a local chain, out of thin air

Run 'cocoon chain COMMAND --help' for its flags.
`

func runChain(ctx context.Context, args []string) error {
	return runSub(ctx, "chain", chainHelp, map[string]func(context.Context, []string) error{
		"serve": runChainServe, "faucet": runChainFaucet,
	}, args)
}

func runChainServe(ctx context.Context, args []string) error {
	fs, verbose := newFlags("chain serve", "Serves the local chain in --dir over HTTP on --listen, so that separate processes (and machines)\nshare one local chain: give them --chain local+http://HOST:PORT. Only this process may open --dir\nwhile it runs. A LOCAL chain, not TON: balances are not Toncoin.")
	dir := fs.String("dir", defaultDir("chain"), "state directory of the local chain")
	listen := fs.String("listen", "127.0.0.1:8710", "address to serve on (port 0: any free port)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	log := newLogger(*verbose)
	c, closer, err := chainspec.Open(ctx, "local:"+*dir, log)
	if err != nil {
		return err
	}
	defer closer.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- local.Serve(ln, c.(*local.Chain)) }()
	url := "http://" + ln.Addr().String()
	fmt.Printf("serving the local chain in %s at %s\nuse it with: --chain local+%s\n\n  WARNING: %s\n\n", *dir, url, url, local.Note)
	select {
	case <-ctx.Done():
		ln.Close()
		<-served
		return nil
	case err := <-served:
		return fmt.Errorf("serving %s: %w", url, err)
	}
}

func runChainFaucet(ctx context.Context, args []string) error {
	m := newMoneyCmd("chain faucet ADDR AMOUNT", "Credits AMOUNT to ADDR out of thin air: local chains only.\n"+amountHelp, false)
	to, amount, err := m.parseAddrAmount(args)
	if err != nil {
		return err
	}
	if err := m.start(ctx); err != nil {
		return err
	}
	defer m.stop()
	f, ok := m.chain.(chain.Faucet)
	if !ok {
		return fmt.Errorf("chain %s has no faucet: only local chains do (on testnet, ask a testnet giver)", m.chain.Name())
	}
	tx, err := f.Fund(m.ctx, to, amount)
	if err != nil {
		return err
	}
	acc, err := m.chain.Account(m.ctx, to)
	if err != nil {
		return err
	}
	return m.print(struct {
		Chain   string `json:"chain"`
		Address string `json:"address"`
		Amount  uint64 `json:"amount"`
		Balance uint64 `json:"balance"`
		Tx      txJSON `json:"transaction"`
	}{m.chain.Name(), m.addr(to), amount, acc.Balance, txOf(tx)},
		fmt.Sprintf("credited %s TON to %s (local faucet)\nbalance: %s TON\n", nanoton.Format(amount), m.addr(to), nanoton.Format(acc.Balance)))
}

const walletHelp = `Usage: cocoon wallet COMMAND [flags]

  new       create a wallet key (--key FILE) and print the wallet's address
  show      print a wallet's address, status, balance and seqno
  balance   print a wallet's balance
  send      send an amount to an address, with an optional comment

Wallets are V5R1 contracts controlled by one Ed25519 key; the address depends on the chain, so one key
has different addresses on a local chain, testnet and mainnet. Every command takes --chain, --key and
--json; run 'cocoon wallet COMMAND --help' for the rest.
`

func runWallet(ctx context.Context, args []string) error {
	return runSub(ctx, "wallet", walletHelp, map[string]func(context.Context, []string) error{
		"new": runWalletNew, "show": runWalletShow, "balance": runWalletBalance, "send": runWalletSend,
	}, args)
}

func runWalletNew(ctx context.Context, args []string) error {
	m := newMoneyCmd("wallet new", "Creates a new Ed25519 key in --key (mode 0600; never overwrites one) and prints the address\nof its wallet on --chain. The wallet is deployed by its first send; fund it first.", true)
	if _, err := m.parse(args, 0, 0); err != nil {
		return err
	}
	if err := m.start(ctx); err != nil {
		return err
	}
	defer m.stop()
	key, err := identity.CreateWalletKey(m.key)
	if err != nil {
		return err
	}
	w, err := chain.NewWallet(m.chain, key)
	if err != nil {
		return err
	}
	pub := hex.EncodeToString(key.Public().(ed25519.PublicKey))
	hint := "fund it from a faucet or another wallet"
	if strings.HasPrefix(m.spec, "local") {
		hint = fmt.Sprintf("cocoon chain faucet --chain %s %s 10", m.spec, m.addr(w.Address()))
	}
	return m.print(struct {
		Chain      string `json:"chain"`
		Address    string `json:"address"`
		RawAddress string `json:"raw_address"`
		PublicKey  string `json:"public_key"`
		KeyFile    string `json:"key_file"`
	}{m.chain.Name(), m.addr(w.Address()), w.Address().StringRaw(), pub, m.key},
		fmt.Sprintf("address:    %s\npublic key: %s\nkey file:   %s (keep it secret)\nchain:      %s\nfund it:    %s\n",
			m.addr(w.Address()), pub, m.key, m.chain.Name(), hint))
}

// startTarget parses args, [ADDR], opens the chain and reads the account a show or balance is about:
// ADDR if given, else the wallet of --key, which it returns too. Call stop afterwards, whether it failed
// or not.
func (m *moneyCmd) startTarget(ctx context.Context, args []string) (*address.Address, *chain.Wallet, *chain.Account, error) {
	pos, err := m.parse(args, 0, 1)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := m.start(ctx); err != nil {
		return nil, nil, nil, err
	}
	var (
		addr *address.Address
		w    *chain.Wallet
	)
	if len(pos) == 1 {
		addr, err = chain.ParseAddress(pos[0])
	} else if w, err = m.wallet(); err == nil {
		addr = w.Address()
	}
	if err != nil {
		return nil, nil, nil, err
	}
	acc, err := m.chain.Account(m.ctx, addr)
	if err != nil {
		return nil, nil, nil, err
	}
	return addr, w, acc, nil
}

func runWalletShow(ctx context.Context, args []string) error {
	m := newMoneyCmd("wallet show [ADDR]", "Prints the address, status, balance and seqno of the wallet of --key, or of ADDR.", true)
	addr, w, acc, err := m.startTarget(ctx, args)
	defer m.stop()
	if err != nil {
		return err
	}
	out := struct {
		Chain      string `json:"chain"`
		Address    string `json:"address"`
		RawAddress string `json:"raw_address"`
		PublicKey  string `json:"public_key,omitempty"`
		Status     string `json:"status"`
		Balance    uint64 `json:"balance"`
		Seqno      uint32 `json:"seqno"`
		LastLT     uint64 `json:"last_lt"`
	}{Chain: m.chain.Name(), Address: m.addr(addr), RawAddress: addr.StringRaw(), Status: status(acc.Status), Balance: acc.Balance, LastLT: acc.LastLT}
	if w != nil {
		out.PublicKey = hex.EncodeToString(m.pub)
		if out.Seqno, err = w.Seqno(m.ctx); err != nil {
			return err
		}
	} else if acc.Active() {
		// Any wallet contract answers "seqno"; other contracts may not, and then there is none to show.
		if res, err := m.chain.RunGetMethod(m.ctx, addr, "seqno"); err == nil && len(res) == 1 {
			if n, ok := res[0].(*big.Int); ok && n.IsUint64() && n.Uint64() <= math.MaxUint32 {
				out.Seqno = uint32(n.Uint64())
			}
		}
	}
	human := fmt.Sprintf("address:    %s\nchain:      %s\nstatus:     %s\nbalance:    %s TON\nseqno:      %d\n",
		out.Address, out.Chain, out.Status, nanoton.Format(out.Balance), out.Seqno)
	if out.PublicKey != "" {
		human += "public key: " + out.PublicKey + "\n"
	}
	if acc.Status != tlb.AccountStatusActive {
		human += "(not deployed yet: a wallet is deployed by its first send)\n"
	}
	return m.print(out, human)
}

func runWalletBalance(ctx context.Context, args []string) error {
	m := newMoneyCmd("wallet balance [ADDR]", "Prints the balance of the wallet of --key, or of ADDR.", true)
	addr, _, acc, err := m.startTarget(ctx, args)
	defer m.stop()
	if err != nil {
		return err
	}
	return m.print(struct {
		Chain   string `json:"chain"`
		Address string `json:"address"`
		Balance uint64 `json:"balance"`
	}{m.chain.Name(), m.addr(addr), acc.Balance}, nanoton.Format(acc.Balance)+" TON\n")
}

func runWalletSend(ctx context.Context, args []string) error {
	m := newMoneyCmd("wallet send ADDR AMOUNT", "Sends AMOUNT from the wallet of --key to ADDR and waits until it has arrived. The message\nbounces back if ADDR is a deployed contract that refuses it (unless ADDR is in non-bounceable UQ… form).\n"+amountHelp, true)
	comment := m.fs.String("comment", "", "text comment to attach")
	to, amount, err := m.parseAddrAmount(args)
	if err != nil {
		return err
	}
	w, err := m.startWallet(ctx)
	defer m.stop()
	if err != nil {
		return err
	}
	dst, err := m.chain.Account(m.ctx, to)
	if err != nil {
		return err
	}
	t := chain.Transfer{To: to, Amount: amount, Bounce: to.IsBounceable() && dst.Active()}
	if *comment != "" {
		if t.Body, err = wallet.CreateCommentCell(*comment); err != nil {
			return err
		}
	}
	sent, err := contracts.Send(m.ctx, w, t)
	if err != nil {
		return err
	}
	return m.print(struct {
		Chain   string `json:"chain"`
		From    string `json:"from"`
		To      string `json:"to"`
		Amount  uint64 `json:"amount"`
		Comment string `json:"comment,omitempty"`
		sentJSON
	}{m.chain.Name(), m.addr(w.Address()), m.addr(to), amount, *comment, sentOf(sent)},
		fmt.Sprintf("sent %s TON to %s (fees %s TON, transaction %d:%x)\n",
			nanoton.Format(amount), m.addr(to), nanoton.Format(sent.Fees()), sent.Wallet.LT, sent.Wallet.Hash))
}

// sortedHex writes hashes as hex, sorted.
func sortedHex(hs [][32]byte) []string {
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		out = append(out, hex.EncodeToString(h[:]))
	}
	sort.Strings(out)
	return out
}
