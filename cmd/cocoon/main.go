// Command cocoon runs the Cocoon network: `cocoon up` starts a whole
// network in one process; `cocoon proxy`, `cocoon worker` and `cocoon client`
// run the roles separately.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

const usage = `Cocoon — Confidential Compute Open Network: private AI inference.

Usage:
  cocoon up       run a whole network (proxy, workers, client) in one process
  cocoon proxy    run a proxy: workers dial in, clients send sealed requests
  cocoon worker   run a worker: opens sealed requests and runs them on an engine
  cocoon client   run a client: the OpenAI API on localhost
  cocoon status   show a 'cocoon up' network's accounts and channels, read from its chain
  cocoon simulated-tee DIR
                  create (or show) a development TEE vendor in DIR for separate
                  processes: workers use --simulated-tee DIR, proxies and clients
                  --trust-simulated-root DIR/vendor-root.pem
  cocoon chain    serve a local chain to other processes; its faucet
  cocoon wallet   new | show | balance | send: wallets on a local chain or TON
  cocoon root     deploy | show | allow-measurement | allow-model | set-prices
  cocoon channel  open | top-up | show | voucher | claim | close: payment channels
  cocoon attest   verify | measure | show: check TDX quotes offline, image hashes, this machine's TEE
  cocoon bench    load an OpenAI base URL (req/s, TTFT, latency quantiles, errors by kind);
                  bench engine | bench relay: an instant engine and a bare relay to compare with

Run 'cocoon COMMAND --help' for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmds := map[string]func(context.Context, []string) error{
		"up": runUp, "proxy": runProxy, "worker": runWorker, "client": runClient, "simulated-tee": runSimulatedTEE, "status": runStatus,
		"chain": runChain, "wallet": runWallet, "root": runRoot, "channel": runChannel,
		"attest": runAttest, "bench": runBench,
	}
	name := os.Args[1]
	if name == "help" || name == "-h" || name == "--help" {
		fmt.Print(usage)
		return
	}
	run, ok := cmds[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "cocoon: unknown command %q\n\n%s", name, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "cocoon %s: %v\n", name, err)
		os.Exit(1)
	}
}

// newFlags returns a flag set for a command, with a --verbose flag.
func newFlags(name, summary string) (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: cocoon %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	v := fs.Bool("verbose", false, "log debug messages")
	return fs, v
}

// newLogger logs human-readable lines to stderr.
func newLogger(verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// defaultDir is ~/.cocoon/sub, or ./.cocoon/sub without a home directory.
func defaultDir(sub string) string {
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	return filepath.Join(home, ".cocoon", sub)
}

// configPath finds --config FILE among args before the flags are parsed, so
// that the file's values become the defaults the flags override.
func configPath(args []string) string {
	for i, a := range args {
		for _, p := range []string{"-config", "--config"} {
			if a == p && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v
			}
		}
	}
	return ""
}

// list is a repeatable string flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

// mapFlag is a repeatable name=value flag.
type mapFlag map[string]string

func (m mapFlag) String() string { return fmt.Sprint(map[string]string(m)) }
func (m mapFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" || val == "" {
		return fmt.Errorf("want NAME=UPSTREAM, got %q", v)
	}
	m[k] = val
	return nil
}
