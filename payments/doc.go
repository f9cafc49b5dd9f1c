// Package payments keeps the two off-chain ends of a Cocoon payment channel: the Payer, which signs
// a new cumulative voucher for every cost it accepts, and the Payee, which keeps the newest voucher and
// claims it on chain.
//
// # Flow
//
// The payer opens a channel with Open (deploy and first top-up through its wallet) and adds to it with
// TopUp. For every cost it accepts — the client after it has verified a worker's usage receipt, the proxy
// after it has booked one — it calls Payer.Pay, which returns a voucher for (channel id, seqno+1,
// total+amount) signed with the payer's voucher key, and sends that voucher to the payee. The payee
// checks it with Payee.Accept and keeps it if it is newer than what it has. Vouchers are cumulative, so the
// payee only ever needs the newest one: when Payee.ShouldClaim says the unclaimed amount has crossed a
// threshold, and on a clean stop, Payee.Claim sends it to the channel through the payee's wallet and the
// contract pays the difference to what it has already paid. N payments therefore cost a handful of
// transactions — open, a claim now and then, a close — whatever N is. A payer whose payee has gone away
// calls StartClose, waits the channel's close delay (during which the payee may still claim) and
// FinishClose takes back everything that was not claimed. A payee therefore runs a Watcher, which reads
// its channels' state now and then and claims the newest voucher as soon as it sees a close started.
//
// # Crash safety
//
// Each end keeps one small state file per channel, in a directory named after the channel's address
// (see ChannelDir), rewritten whole on every change: written to a temporary file, fsynced, renamed over
// the old one, and the directory fsynced. A reader sees the old state or the new one, never a mix; the
// file carries a SHA-256 of its contents, so a damaged file is ErrCorrupt, never a silent reset to zero.
// A lock file keeps a second process (or a second Open in the same one) from using the same state.
//
// The payer records the new (seqno, total) durably before it signs and returns the voucher. If it dies
// before the record is on disk, no voucher with that seqno ever left the process, and the next Pay after
// a restart may use the seqno again. If it dies after, the voucher may or may not have been delivered;
// Payer.Last signs the same (seqno, total) again (Ed25519 signatures are deterministic: the same bytes), so
// it can be re-sent, and the next Pay uses the next seqno. Either way two vouchers with the same seqno and
// different totals never exist, and the total never goes back.
//
// The payee records a voucher durably before Accept returns, so a voucher the payer saw accepted is never
// lost. Claim reads the channel's state from the chain before it sends and after: if a claim reached the
// chain but the payee died before recording it, the next Claim sees that the chain has already paid the
// newest total and sends nothing. The contract itself refuses replays and stale vouchers, so nothing is
// paid twice even by a payee that lost its state. Opening a fresh state directory for a channel that
// already has history is the one thing a file cannot catch: call Payer.Refresh (which fails with
// ErrStateBehind) and Payee.Refresh after opening, before paying or accepting.
//
// Amounts are integer nanoTON in uint64. A Payer or Payee is safe for concurrent use; a chain.Wallet is
// not, so callers that share one wallet between channels must serialize Open, TopUp, Claim, StartClose and
// FinishClose on it.
package payments
