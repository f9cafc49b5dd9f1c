package contracts

// ExitMeaning says in words why Cocoon's contracts (or the TVM) end with an exit code, after the table
// in contracts/README.md.
func ExitMeaning(code int32) string {
	switch code {
	case ExitNotPayer:
		return "not from the channel's payer"
	case ExitNotPayee:
		return "claim not from the channel's payee"
	case ExitWrongChannel:
		return "voucher for another channel"
	case ExitBadSignature:
		return "voucher not signed by the payer's key"
	case ExitStaleSeqno:
		return "stale voucher: its seqno is not above the last claimed one; an old or replayed voucher"
	case ExitTotalBelowClaimed:
		return "voucher total below what was already claimed"
	case ExitTotalAboveDeposit:
		return "voucher total above the deposit"
	case ExitClosed:
		return "the channel is closed"
	case ExitNotOpen:
		return "the channel is closing"
	case ExitNotClosing:
		return "no close was started"
	case ExitTooEarly:
		return "too early: the close delay has not passed"
	case ExitLowValue:
		return "top-up carries less than its amount plus the 0.01 TON reserve"
	case ExitNotOwner:
		return "not from the root's owner"
	case ExitUnknownProxy:
		return "no such registered proxy"
	case ExitBadVoucherTag:
		return "malformed message: wrong opcode prefix"
	case 9:
		return "malformed message: cell underflow"
	case ExitUnknownOp:
		return "unknown operation"
	case 13:
		return "out of gas"
	}
	return "unknown exit code"
}
