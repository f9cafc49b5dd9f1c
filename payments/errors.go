package payments

import "errors"

// Errors callers branch on. Returned errors wrap them with the channel and the amounts involved.
var (
	// ErrInsufficientDeposit: the voucher total would exceed the channel's deposit as last known (see
	// SetDeposit and Refresh), or the chain refused a claim above the deposit.
	ErrInsufficientDeposit = errors.New("payments: total would exceed the channel's deposit")
	// ErrStale: a voucher that is not newer than the one kept (and not the same one), or whose total
	// goes down; or a claim the chain refused as stale.
	ErrStale = errors.New("payments: stale voucher")
	// ErrBadSignature: a voucher not signed by the channel's payer key.
	ErrBadSignature = errors.New("payments: voucher not signed by the payer")
	// ErrWrongChannel: a voucher for another channel.
	ErrWrongChannel = errors.New("payments: voucher for another channel")
	// ErrNoVoucher: the payer has not signed a voucher yet.
	ErrNoVoucher = errors.New("payments: no voucher yet")
	// ErrCorrupt: a state file that cannot be read back as it was written. Nothing is reset: move the
	// file away only if losing what it held is acceptable.
	ErrCorrupt = errors.New("payments: corrupt state file")
	// ErrLocked: another Payer or Payee, in this process or another, has the channel's state open.
	ErrLocked = errors.New("payments: state in use")
	// ErrClosed: the Payer or Payee was closed.
	ErrClosed = errors.New("payments: closed")
	// ErrStateBehind: the chain has seen a newer voucher than the payer's state holds, so the state was
	// lost or restored from an old copy; signing more could give two vouchers the same seqno.
	ErrStateBehind = errors.New("payments: local state is behind the chain")
	// ErrNotCaughtUp: a payer restarted after a crash has not heard yet what its payee holds, so it
	// signs nothing new: post Payer.Last and pass the answer to Payer.CatchUp (a Stream does).
	ErrNotCaughtUp = errors.New("payments: payer restarted after a crash; catch up with the payee first")
	// ErrAlreadyOpen: Open found the channel already deployed (it returns the address too).
	ErrAlreadyOpen = errors.New("payments: channel already deployed")
	// ErrChannelClosed: the channel has been closed on chain and accepts nothing more.
	ErrChannelClosed = errors.New("payments: channel closed")
	// ErrTooEarly: FinishClose before the close delay has passed (see contracts.ChannelState.ClosableAt).
	ErrTooEarly = errors.New("payments: too early: the close delay has not passed")
	// ErrRefused: the channel contract refused a message; the error names its exit code.
	ErrRefused = errors.New("payments: refused by the channel")
)

// Errors of the collector and the stream.
var (
	// ErrPayeeAway: a Post found no link to the payee now (a worker that has not connected yet, or
	// has gone); the stream posts the voucher again when the payee is back. Not worth a warning.
	ErrPayeeAway = errors.New("payments: payee not reachable now")
	// ErrNotChannel: an account that does not run the Cocoon channel code with the data it claims.
	ErrNotChannel = errors.New("payments: not a Cocoon payment channel")
	// ErrUnknownChannel: a voucher on a channel the collector does not know and may not look up (no
	// store, or one that the chain recently said is no Cocoon channel paying this payee).
	ErrUnknownChannel = errors.New("payments: unknown channel")
	// ErrRefusedChannel: a channel the collector will not be paid through: another payee, not open,
	// or a close delay below the minimum (the payer could take its deposit back before a claim).
	ErrRefusedChannel = errors.New("payments: channel refused")
	// ErrBusy: too many channels looked up lately, or too many kept; try again later.
	ErrBusy = errors.New("payments: too many channel look-ups")
	// ErrPostRefused: the payee answered a voucher post with an error status.
	ErrPostRefused = errors.New("payments: voucher post refused")
	// ErrOwed: a Stream still owes amounts it could not pay or deliver (Flush returns it, wrapped with
	// the reason).
	ErrOwed = errors.New("payments: amounts still owed")
)
