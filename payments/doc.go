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
// minimum close delay, keeps each newer voucher in a Payee end (Payee.Accept; see Crash safety),
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
// Money stays off the request's path: no fsync happens when a voucher is signed or accepted. Each
// end keeps, in a directory named after the channel's address (see ChannelDir), a state file — a
// checkpoint, rewritten whole and seldom: written to a temporary file, fsynced, renamed over the old
// one, the directory fsynced — and a journal beside it. A background flush appends the newest voucher
// to the journal, one fixed-size checksummed record with one fsync, at most FlushInterval after it
// changed: however many vouchers an end handles, it writes one record per interval (group commit),
// and Sync writes at once. Opening an end reads the checkpoint, lays the journal's newest record over
// it, and writes that back as the new checkpoint. A reader never sees a mix; a state file or journal
// carries checksums, so damage is ErrCorrupt, never a silent reset to zero — except a journal's torn
// last record, which no flush ever reported written and which is dropped. A lock file keeps a second
// process (or a second Open in the same one) from using the same state.
//
// What must survive any crash, and does: a payer never signs two different vouchers with the same
// seqno, and no voucher is paid twice. Seqnos only need to go up (the payee and the contract take any
// seqno above the one they hold), so the payer reserves them on disk in blocks of 1024 — the one
// durable write it waits for — and signs from memory within the block. Reopened after a crash
// (anything but Close, which gives the unused seqnos back), it goes on past the whole block, at the
// last total on disk, and pays nothing new (ErrNotCaughtUp) until it has posted its newest voucher
// and heard the answer: a payee holding a newer voucher than the payer's answers 409 with it
// (StaleVoucherError), and CatchUp adds, once, what that voucher paid above the total on disk — it
// bears the payer's own signature, so it is a promise the payer had made; a Stream does all this by
// itself. Without that wait, a new cost could lift the payer's total above the lost voucher's and the
// payee, seeing a higher total, could not tell. Refresh catches up with a claim on chain the same way.
//
// What a crash may lose, at most:
//
//   - A payer: the costs it had accepted and not yet signed (Stream.Owed). Those it signed and
//     delivered come back from the payee; those signed and never delivered are lost with it. Either
//     way the payee has served that much without holding a voucher for it, which its credit limit
//     bounds.
//   - A payee: the vouchers it accepted in the last FlushInterval; it reopens holding an older one.
//     Vouchers are cumulative, so the payer's next voucher — a Stream posts its newest when it starts
//     and on Resend, and every new cost brings one — covers them again; only if the payer never pays
//     again is the difference lost. A flush that fails stops the end from signing or accepting more
//     until one succeeds, so the window does not grow.
//
// Claims are made with a voucher on disk: Payee.Claim syncs first. Claim reads the channel's state
// from the chain before it sends and after: if a claim reached the chain but the payee died before
// recording it, the next Claim sees that the chain has already paid the newest total and sends
// nothing. The contract itself refuses replays and stale vouchers, so nothing is paid twice even by a
// payee that lost its state. Opening a fresh state directory for a channel that already has history
// is the one thing the files cannot catch: call Payer.Refresh (which fails with ErrStateBehind) and
// Payee.Refresh after opening, before paying or accepting.
//
// Amounts are integer nanoTON in uint64. Every type here is safe for concurrent use except
// chain.Wallet, so callers that share one wallet between channels serialize its sends with a Wallet.
package payments
