package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/chain/local"
	"github.com/cocoon-go/cocoon/chain/ton"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/price"
)

// ChainSpecs says which --chain specs OpenChain takes, for help texts.
const ChainSpecs = "local:DIR (the embedded local chain stored in DIR), local+http://HOST:PORT (a local chain served by 'cocoon chain serve'), ton:testnet, ton:mainnet, or ton:CONFIG (a global config file or URL)"

// OpenChain opens the chain that spec names (see ChainSpecs). Close the returned io.Closer when done:
// for local:DIR it releases the directory, which only one process may hold at a time.
func OpenChain(ctx context.Context, spec string, log *slog.Logger) (chain.Chain, io.Closer, error) {
	kind, rest, _ := strings.Cut(spec, ":")
	switch {
	case kind == "local" && rest != "":
		dir := expandHome(rest)
		c, err := local.Open(dir, &local.Options{Logger: log})
		if errors.Is(err, local.ErrLocked) {
			return nil, nil, fmt.Errorf("local chain %s is held by another process (a running 'cocoon up' or 'cocoon chain serve'?); "+
				"to share it, serve it with 'cocoon chain serve --dir %s' and pass the --chain local+http://HOST:PORT it prints: %w", dir, dir, err)
		}
		if err != nil {
			return nil, nil, err
		}
		return c, c, nil
	case kind == "local+http" || kind == "local+https":
		c, err := local.Dial(strings.TrimPrefix(spec, "local+"))
		if err != nil {
			return nil, nil, err
		}
		return c, io.NopCloser(nil), nil
	case kind == "ton" && rest != "":
		c, err := ton.Dial(ctx, rest, nil)
		if err != nil {
			return nil, nil, err
		}
		return c, c, nil
	}
	return nil, nil, fmt.Errorf("chain %q: want %s", spec, ChainSpecs)
}

// expandHome replaces a leading "~/" with the home directory: in "local:~/x" no shell does it.
func expandHome(p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return p
}

// ErrNoKey is returned by LoadWalletKey for a key file that does not exist.
var ErrNoKey = errors.New("no key file")

// LoadWalletKey reads the Ed25519 key of a wallet from path (PEM, PKCS #8, as CreateWalletKey writes it).
func LoadWalletKey(path string) (ed25519.PrivateKey, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s (create one with 'cocoon wallet new --key %s')", ErrNoKey, path, path)
	}
	return identity.Ed25519(path)
}

// CreateWalletKey creates a new Ed25519 wallet key at path, readable only by its owner (mode 0600).
// It refuses to overwrite a file that exists: losing a wallet key loses the wallet's money.
func CreateWalletKey(path string) (ed25519.PrivateKey, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%s already exists; not overwriting a key", path)
	}
	return identity.Ed25519(path)
}

// NanoPerTON is how many nanoTON make one TON.
const NanoPerTON uint64 = 1_000_000_000

// FormatTON writes nanoTON as TON with all nine decimals, e.g. "1.500000000".
func FormatTON(nano uint64) string {
	return fmt.Sprintf("%d.%09d", nano/NanoPerTON, nano%NanoPerTON)
}

// ParseAmount reads an amount given on a command line: TON as a decimal with at most nine decimals
// ("1.5", "2", "0.000000001"), or nanoTON as an integer followed by "n" ("1500000000n"). It uses
// integer arithmetic only: every amount is exact or refused.
func ParseAmount(s string) (uint64, error) {
	if digits, ok := strings.CutSuffix(s, "n"); ok {
		if !allDigits(digits) {
			return 0, fmt.Errorf("amount %q: want TON like 1.5 or nanoTON like 1500000000n", s)
		}
		n, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("amount %q: too large", s)
		}
		return n, nil
	}
	whole, frac, dot := strings.Cut(s, ".")
	if !allDigits(whole) || dot && (!allDigits(frac) || len(frac) > 9) {
		return 0, fmt.Errorf("amount %q: want TON like 1.5 (at most 9 decimals) or nanoTON like 1500000000n", s)
	}
	w, err := strconv.ParseUint(whole, 10, 64)
	if err != nil || w > math.MaxUint64/NanoPerTON {
		return 0, fmt.Errorf("amount %q: too large", s)
	}
	var f uint64
	if dot {
		f, _ = strconv.ParseUint(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	n := w*NanoPerTON + f
	if n < f {
		return 0, fmt.Errorf("amount %q: too large", s)
	}
	return n, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// ParseAddress reads an address in user-friendly ("EQ…", "UQ…") or raw ("0:<hex>") form.
func ParseAddress(s string) (*address.Address, error) {
	if strings.Contains(s, ":") {
		a, err := address.ParseRawAddr(s)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", s, err)
		}
		return a, nil
	}
	a, err := address.ParseAddr(s)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", s, err)
	}
	return a, nil
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

// FeeReserve is what Send wants a wallet to hold on top of the amounts it sends, for its fees: a V5R1
// transfer costs about 0.0005 TON.
const FeeReserve uint64 = 10_000_000

var (
	// ErrNotEnoughBalance is returned by Send when the wallet cannot pay what it is asked to send.
	ErrNotEnoughBalance = errors.New("not enough balance")
	// ErrNotDeployed is returned for an operation on a contract that is not deployed at its address.
	ErrNotDeployed = errors.New("not deployed")
)

// RefusedError is a message that a contract refused: its transaction ran and failed with ExitCode (or
// its action phase failed with ActionCode). The value was bounced back, less fees.
type RefusedError struct {
	Address    *address.Address
	ExitCode   int32
	ActionCode int32
}

// Error names the contract and says in words why it refused.
func (e *RefusedError) Error() string {
	if e.ExitCode == 0 || e.ExitCode == 1 {
		return fmt.Sprintf("%s refused the message: action phase failed with result code %d", e.Address, e.ActionCode)
	}
	return fmt.Sprintf("%s refused the message: exit code %d (%s)", e.Address, e.ExitCode, ExitMeaning(e.ExitCode))
}

// ExitMeaning says in words why Cocoon's contracts (or the TVM) end with an exit code, after the table
// in contracts/README.md.
func ExitMeaning(code int32) string {
	switch code {
	case contracts.ExitNotPayer:
		return "not from the channel's payer"
	case contracts.ExitNotPayee:
		return "claim not from the channel's payee"
	case contracts.ExitWrongChannel:
		return "voucher for another channel"
	case contracts.ExitBadSignature:
		return "voucher not signed by the payer's key"
	case contracts.ExitStaleSeqno:
		return "stale voucher: its seqno is not above the last claimed one; an old or replayed voucher"
	case contracts.ExitTotalBelowClaimed:
		return "voucher total below what was already claimed"
	case contracts.ExitTotalAboveDeposit:
		return "voucher total above the deposit"
	case contracts.ExitClosed:
		return "the channel is closed"
	case contracts.ExitNotOpen:
		return "the channel is closing"
	case contracts.ExitNotClosing:
		return "no close was started"
	case contracts.ExitTooEarly:
		return "too early: the close delay has not passed"
	case contracts.ExitLowValue:
		return "top-up carries less than its amount plus the 0.01 TON reserve"
	case contracts.ExitNotOwner:
		return "not from the root's owner"
	case contracts.ExitUnknownProxy:
		return "no such registered proxy"
	case contracts.ExitBadVoucherTag:
		return "malformed message: wrong opcode prefix"
	case 9:
		return "malformed message: cell underflow"
	case contracts.ExitUnknownOp:
		return "unknown operation"
	case 13:
		return "out of gas"
	}
	return "unknown exit code"
}

// Sent is what Send did: the wallet's transaction and every transaction it caused.
type Sent struct {
	Wallet *chain.Transaction
	Trace  []*chain.Transaction
}

// Fees is what all of Sent's transactions paid, nanoTON.
func (s *Sent) Fees() uint64 {
	n := s.Wallet.Fees
	for _, tx := range s.Trace {
		n += tx.Fees
	}
	return n
}

// Send sends transfers from w after checking that it can pay for them, and waits for the wallet's
// transaction and everything it causes. A receiver that refuses its message is a *RefusedError.
func Send(ctx context.Context, w *chain.Wallet, transfers ...chain.Transfer) (*Sent, error) {
	acc, err := w.Chain().Account(ctx, w.Address())
	if err != nil {
		return nil, err
	}
	need := FeeReserve
	for _, t := range transfers {
		need += t.Amount
	}
	if acc.Balance < need {
		if acc.Status != tlb.AccountStatusActive && acc.Balance == 0 {
			return nil, fmt.Errorf("%w: wallet %s is not deployed and holds nothing; fund it first (local chain: 'cocoon chain faucet')", ErrNotEnoughBalance, w.Address())
		}
		return nil, fmt.Errorf("%w: wallet %s holds %s TON, this needs %s TON (%s TON kept for fees)",
			ErrNotEnoughBalance, w.Address(), FormatTON(acc.Balance), FormatTON(need), FormatTON(FeeReserve))
	}
	tx, err := w.Send(ctx, transfers...)
	if err != nil {
		return nil, err
	}
	if len(tx.Out) < len(transfers) {
		return nil, fmt.Errorf("%w: wallet %s sent %d of %d messages", ErrNotEnoughBalance, w.Address(), len(tx.Out), len(transfers))
	}
	trace, err := chain.Trace(ctx, w.Chain(), tx)
	s := &Sent{Wallet: tx, Trace: trace}
	if err != nil {
		return s, err
	}
	for _, t := range trace {
		if t.Aborted && t.ComputeSkipped == "" && t.In != nil && t.In.Src != nil && t.In.Src.Equals(w.Address()) {
			return s, &RefusedError{Address: t.Address, ExitCode: t.ExitCode, ActionCode: t.ActionCode}
		}
	}
	return s, nil
}

// ActiveAccount returns the state of the contract at addr, or ErrNotDeployed if it has no code.
func ActiveAccount(ctx context.Context, c chain.Chain, what string, addr *address.Address) (*chain.Account, error) {
	acc, err := c.Account(ctx, addr)
	if err != nil {
		return nil, err
	}
	if !acc.Active() {
		return nil, fmt.Errorf("%s %s: %w (status %s)", what, addr, ErrNotDeployed, acc.Status)
	}
	return acc, nil
}
