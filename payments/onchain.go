package payments

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
)

// CloseValue is what StartClose and FinishClose attach for the channel's gas. What the gas does not
// use stays in the channel and goes back to the payer with the refund.
const CloseValue uint64 = 20_000_000

// State reads the state of the channel at addr from c. A channel that is not deployed is
// chain.ErrNotActive.
func State(ctx context.Context, c chain.Chain, addr *address.Address) (*contracts.ChannelState, error) {
	vals, err := c.RunGetMethod(ctx, addr, contracts.GetChannelState)
	if err != nil {
		return nil, fmt.Errorf("payments: state of channel %s: %w", addr, err)
	}
	st, err := contracts.ParseChannelState(vals)
	if err != nil {
		return nil, fmt.Errorf("payments: state of channel %s: %w", addr, err)
	}
	return st, nil
}

// Open deploys channel ch through the payer's wallet w with a first top-up of deposit nanoTON (w sends
// deposit + contracts.TopUpReserve) and returns its address once the channel is active. A channel that is
// already deployed is left alone: Open returns its address and ErrAlreadyOpen (use State and TopUp).
func Open(ctx context.Context, w *chain.Wallet, ch contracts.ChannelConfig, deposit uint64) (*address.Address, error) {
	init, err := ch.StateInit()
	if err != nil {
		return nil, fmt.Errorf("payments: open: %w", err)
	}
	addr, _ := ch.Address()
	if err := checkWallet(w, ch.Payer, "payer", addr); err != nil {
		return nil, err
	}
	acc, err := w.Chain().Account(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("payments: open channel %s: %w", addr, err)
	}
	if acc.Active() {
		return addr, fmt.Errorf("%w: %s", ErrAlreadyOpen, addr)
	}
	value, err := topUpValue(deposit, addr)
	if err != nil {
		return nil, err
	}
	if _, err := send(ctx, w, addr, "open", value, contracts.TopUpBody(0, deposit), init); err != nil {
		return nil, err
	}
	return addr, nil
}

// TopUp adds amount nanoTON to the deposit of channel ch through the payer's wallet w (which sends
// amount + contracts.TopUpReserve) and returns the channel's state after it.
func TopUp(ctx context.Context, w *chain.Wallet, ch contracts.ChannelConfig, amount uint64) (*contracts.ChannelState, error) {
	addr, err := payerOp(w, ch)
	if err != nil {
		return nil, err
	}
	value, err := topUpValue(amount, addr)
	if err != nil {
		return nil, err
	}
	return sendAndRead(ctx, w, addr, "top-up", value, contracts.TopUpBody(queryID(), amount))
}

// ClaimWith claims sv on channel ch through the payee's wallet w and returns the channel's state
// after it: for a payee without a Payee end (the CLI's `channel claim`). The contract refuses
// stale, replayed and forged vouchers.
func ClaimWith(ctx context.Context, w *chain.Wallet, ch contracts.ChannelConfig, sv contracts.SignedVoucher) (*contracts.ChannelState, error) {
	addr, err := ch.Address()
	if err != nil {
		return nil, fmt.Errorf("payments: %w", err)
	}
	if err := checkWallet(w, ch.Payee, "payee", addr); err != nil {
		return nil, err
	}
	return sendAndRead(ctx, w, addr, "claim", contracts.ClaimValue, contracts.ClaimBody(queryID(), sv))
}

// StartClose starts closing channel ch through the payer's wallet w and returns the channel's state
// after it; FinishClose may follow at its ClosableAt. Until then the payee can still claim.
func StartClose(ctx context.Context, w *chain.Wallet, ch contracts.ChannelConfig) (*contracts.ChannelState, error) {
	addr, err := payerOp(w, ch)
	if err != nil {
		return nil, err
	}
	return sendAndRead(ctx, w, addr, "start close", CloseValue, contracts.StartCloseBody(queryID()))
}

// FinishClose ends a close of channel ch whose delay has passed: everything left in the channel goes
// back to the payer's wallet w. It returns the channel's final state once the refund has landed. Before
// the channel's ClosableAt by the chain's clock it sends nothing and returns ErrTooEarly; so it does for
// a channel with no close started, or already closed (ErrChannelClosed).
func FinishClose(ctx context.Context, w *chain.Wallet, ch contracts.ChannelConfig) (*contracts.ChannelState, error) {
	addr, err := payerOp(w, ch)
	if err != nil {
		return nil, err
	}
	st, err := State(ctx, w.Chain(), addr)
	if err != nil {
		return nil, err
	}
	now, err := w.Chain().Now(ctx)
	if err != nil {
		return nil, fmt.Errorf("payments: finish close of channel %s: %w", addr, err)
	}
	switch {
	case st.Status == contracts.ChannelClosed:
		return st, fmt.Errorf("%w: %s", ErrChannelClosed, addr)
	case st.Status == contracts.ChannelOpen:
		return st, fmt.Errorf("payments: finish close of channel %s: no close started: start the close first", addr)
	case now.Before(st.ClosableAt()):
		return st, fmt.Errorf("%w: channel %s closable at %s, now %s", ErrTooEarly, addr,
			st.ClosableAt().UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return sendAndRead(ctx, w, addr, "finish close", CloseValue, contracts.FinishCloseBody(queryID()))
}

func payerOp(w *chain.Wallet, ch contracts.ChannelConfig) (*address.Address, error) {
	addr, err := ch.Address()
	if err != nil {
		return nil, fmt.Errorf("payments: %w", err)
	}
	return addr, checkWallet(w, ch.Payer, "payer", addr)
}

func checkWallet(w *chain.Wallet, party *address.Address, role string, ch *address.Address) error {
	if !w.Address().Equals(party) {
		return fmt.Errorf("payments: channel %s: wallet %s is not its %s %s", ch, w.Address(), role, party)
	}
	return nil
}

func topUpValue(amount uint64, ch *address.Address) (uint64, error) {
	if amount > ^uint64(0)-contracts.TopUpReserve {
		return 0, fmt.Errorf("payments: top-up of %d on channel %s overflows", amount, ch)
	}
	return amount + contracts.TopUpReserve, nil
}

// queryID tags a message with something that helps find it in an explorer; the contract ignores it.
func queryID() uint64 { return uint64(time.Now().UnixNano()) }

func sendAndRead(ctx context.Context, w *chain.Wallet, addr *address.Address, op string, value uint64, body *cell.Cell) (*contracts.ChannelState, error) {
	if _, err := send(ctx, w, addr, op, value, body, nil); err != nil {
		return nil, err
	}
	return State(ctx, w.Chain(), addr)
}

// send makes w send value and body (and init, if not nil) to the channel at ch through
// contracts.Send — the one send-and-refusal path, which checks the wallet's balance first and waits
// until everything the send causes has landed (the payout or refund, or the bounce) — and returns
// the channel's transaction. A channel that refuses is ErrRefused, with the matching sentinel for
// the exit codes callers branch on.
func send(ctx context.Context, w *chain.Wallet, ch *address.Address, op string, value uint64, body *cell.Cell, init *tlb.StateInit) (*chain.Transaction, error) {
	sent, err := contracts.Send(ctx, w, chain.Transfer{To: ch, Amount: value, Bounce: true, Body: body, StateInit: init})
	var refusal *contracts.RefusedError
	if err != nil && (!errors.As(err, &refusal) || sent == nil) {
		return nil, fmt.Errorf("payments: %s on channel %s: %w", op, ch, err)
	}
	for _, tx := range sent.Trace {
		if !tx.Address.Equals(ch) || tx.In == nil || tx.In.Src == nil || !tx.In.Src.Equals(w.Address()) {
			continue
		}
		if tx.Aborted || tx.ComputeSkipped != "" {
			return tx, refused(op, ch, tx)
		}
		return tx, nil
	}
	if err != nil {
		return nil, fmt.Errorf("payments: %s on channel %s: %w", op, ch, err)
	}
	return nil, fmt.Errorf("payments: %s on channel %s: no transaction of the channel in the trace", op, ch)
}

func refused(op string, ch *address.Address, tx *chain.Transaction) error {
	what := fmt.Sprintf("%s on channel %s: exit code %d (%s), action code %d%s", op, ch, tx.ExitCode, contracts.ExitMeaning(tx.ExitCode), tx.ActionCode, skipped(tx))
	var also error
	switch tx.ExitCode {
	case contracts.ExitTotalAboveDeposit:
		also = ErrInsufficientDeposit
	case contracts.ExitStaleSeqno, contracts.ExitTotalBelowClaimed:
		also = ErrStale
	case contracts.ExitClosed:
		also = ErrChannelClosed
	case contracts.ExitTooEarly:
		also = ErrTooEarly
	}
	if also != nil {
		return fmt.Errorf("%w (%w): %s", ErrRefused, also, what)
	}
	return fmt.Errorf("%w: %s", ErrRefused, what)
}

func skipped(tx *chain.Transaction) string {
	if tx.ComputeSkipped == "" {
		return ""
	}
	return ", compute skipped: " + tx.ComputeSkipped
}
