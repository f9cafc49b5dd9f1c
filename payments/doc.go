// Package payments keeps the two off-chain ends of a Cocoon payment channel and moves vouchers
// between them: one type per side. A Stream pays a payee over HTTP; a Collector is paid.
//
// # Flow
//
// A payer gets its channel with OpenOrResume: the first usable channel to its payee (Usable: nonce
// 1, 2, …, passing over closing and closed ones, never redeploying a used address), deployed with a
// deposit if needed (Open; TopUp adds to it), its Payer end opened and refreshed. It then makes a
// Stream with a Post (PostTo: a RoundTripper and the payee's voucher URL). For every cost it
// accepts — the client after it has verified a worker's usage receipt, the proxy after it has booked
// one — it calls Stream.Add, which returns at once: the stream has the Payer sign a voucher for
// (channel id, seqno+1, total+amount) with the payer's voucher key, and posts the newest one as a
// VoucherPost. Amounts the deposit does not cover stay owed and are tried again; nothing is dropped.
//
// A payee runs a Collector, which serves the posts (Collector.ServeHTTP, or Accept). It finds a
// channel from its first voucher (Find reads it from the chain once, checked to be a Cocoon channel
// at its address), refuses one that does not pay its wallet, is not open, or closes sooner than its
// minimum close delay, keeps each newer voucher in a Payee end (Payee.Accept records it durably),
// and books channels by account — the payer's voucher key — once a voucher signed by that key was
// accepted on them; Collector.Covered says what an account paid and can still pay, from memory.
// Vouchers are cumulative, so the payee only ever needs the newest one: when the unclaimed amount
// crosses a threshold, and on Close, the collector claims it (Payee.Claim) through its Wallet, whose
// sends go one at a time, and the contract pays the difference to what it has already paid. N
// payments therefore cost a handful of transactions — open, a claim now and then, a close —
// whatever N is. A payer whose payee has gone away calls StartClose, waits the channel's close delay
// (during which the payee may still claim) and FinishClose takes back everything that was not
// claimed. So the collector runs a Watcher, which reads its channels' state now and then and claims
// the newest voucher as soon as it sees a close started; the close delay must span several watch
// intervals (WatchesPerCloseDelay).
//
// Every send goes through contracts.Send, the one send-and-refusal path, and a refusal by the
// channel is ErrRefused with the sentinel of its exit code.
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
// Amounts are integer nanoTON in uint64. Every type here is safe for concurrent use except
// chain.Wallet, so callers that share one wallet between channels serialize its sends with a Wallet.
package payments
