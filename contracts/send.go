package contracts

import (
	"context"
	"errors"
	"fmt"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/nanoton"
)

// FeeReserve is what Send wants a wallet to hold on top of the amounts it sends, for its fees: a V5R1
// transfer costs about 0.0005 TON.
const FeeReserve uint64 = 10_000_000

var (
	// ErrNotEnoughBalance is returned by Send when the wallet cannot pay what it is asked to send.
	ErrNotEnoughBalance = errors.New("contracts: not enough balance")
	// ErrNotDeployed is returned for an operation on a contract that is not deployed at its address.
	ErrNotDeployed = errors.New("contracts: not deployed")
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
			ErrNotEnoughBalance, w.Address(), nanoton.Format(acc.Balance), nanoton.Format(need), nanoton.Format(FeeReserve))
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
