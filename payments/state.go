package payments

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/internal/atomicfile"
)

// stateVersion is the format of the state files: 2 adds the payer's seqno reservation and the
// journal beside the file. Version 1 files are read (no reservation, no journal) and written back as
// 2; a file with another version is refused.
const stateVersion = 2

// Roles, as written in a state file.
const (
	rolePayer = "payer"
	rolePayee = "payee"
)

// state is what one end of a channel keeps on disk.
type state struct {
	Version int    `json:"version"`
	Role    string `json:"role"`
	Channel string `json:"channel"` // the channel's raw address, "0:<64 hex digits>"
	Deposit uint64 `json:"deposit"` // the channel's deposit as last known
	// The payer's last signed voucher, or the payee's newest accepted one; 0, 0 for none.
	Seqno uint64 `json:"seqno"`
	Total uint64 `json:"total"`
	// Payer only: the highest seqno it may have signed a voucher with. Seqnos up to it are taken
	// whether or not the journal has their vouchers, so a payer never signs one of them again.
	Reserved uint64 `json:"reserved,omitempty"`
	// Payee only: the newest voucher's signature (the payer signs again instead) and what the
	// chain has paid out, as last read.
	Signature    []byte `json:"signature,omitempty"`
	Claimed      uint64 `json:"claimed,omitempty"`
	ClaimedSeqno uint64 `json:"claimed_seqno,omitempty"`
}

// envelope is the file: the state's exact bytes and their hash, so that any damage is seen.
type envelope struct {
	State  json.RawMessage `json:"state"`
	SHA256 string          `json:"sha256"`
}

// ChannelDir is the directory, under root, that holds the state of the channel at addr:
// root/<workchain>_<account id in hex>.
func ChannelDir(root string, addr *address.Address) string {
	return filepath.Join(root, fmt.Sprintf("%d_%x", addr.Workchain(), addr.Data()))
}

// rawAddress is addr as a state file writes it.
func rawAddress(addr *address.Address) string {
	return fmt.Sprintf("%d:%x", addr.Workchain(), addr.Data())
}

// encodeState is the file's contents for st.
func encodeState(st *state) ([]byte, error) {
	inner, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(inner)
	out, err := json.Marshal(envelope{State: inner, SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// decodeState parses a state file's contents and checks that they hang together. It does not know
// which channel or role the caller expects: see checkFor.
func decodeState(b []byte) (*state, error) {
	var env envelope
	if err := strictUnmarshal(b, &env); err != nil {
		return nil, err
	}
	if env.State == nil {
		return nil, errors.New("no state")
	}
	sum := sha256.Sum256(env.State)
	if want := hex.EncodeToString(sum[:]); env.SHA256 != want {
		return nil, fmt.Errorf("checksum %q does not match the contents (%s)", env.SHA256, want)
	}
	st := new(state)
	if err := strictUnmarshal(env.State, st); err != nil {
		return nil, err
	}
	if st.Version < 1 || st.Version > stateVersion {
		return nil, fmt.Errorf("version %d, this build reads 1 to %d", st.Version, stateVersion)
	}
	if _, err := parseRawAddress(st.Channel); err != nil {
		return nil, err
	}
	switch st.Role {
	case rolePayer:
		if st.Signature != nil || st.Claimed != 0 || st.ClaimedSeqno != 0 {
			return nil, errors.New("a payer's state with a payee's fields")
		}
	case rolePayee:
		if st.Reserved != 0 {
			return nil, errors.New("a payee's state with a payer's reservation")
		}
		if st.Seqno == 0 && (st.Total != 0 || st.Signature != nil) {
			return nil, errors.New("a voucher with seqno 0")
		}
		if st.Seqno != 0 && len(st.Signature) != len(contracts.SignedVoucher{}.Signature) {
			return nil, fmt.Errorf("a %d-byte voucher signature", len(st.Signature))
		}
	default:
		return nil, fmt.Errorf("role %q", st.Role)
	}
	return st, nil
}

// strictUnmarshal decodes exactly one JSON value into v, refusing unknown fields and trailing data.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data")
	}
	return nil
}

// parseRawAddress parses the one spelling rawAddress writes: basechain, lower-case hex.
func parseRawAddress(s string) (*address.Address, error) {
	id, ok := strings.CutPrefix(s, "0:")
	if !ok || len(id) != 64 || strings.ToLower(id) != id {
		return nil, fmt.Errorf("channel %q is not a basechain raw address", s)
	}
	data, err := hex.DecodeString(id)
	if err != nil {
		return nil, fmt.Errorf("channel %q: %w", s, err)
	}
	return address.NewAddress(0, 0, data), nil
}

// checkFor checks that st is the state of role for the channel at addr.
func (st *state) checkFor(role string, addr *address.Address) error {
	if st.Role != role {
		return fmt.Errorf("the state of a %s, not a %s", st.Role, role)
	}
	if want := rawAddress(addr); st.Channel != want {
		return fmt.Errorf("the state of channel %s, not %s", st.Channel, want)
	}
	return nil
}

// store is one end's state on disk — its checkpoint (the state file), the journal of its vouchers
// since, and the lock over both.
type store struct {
	path    string // the checkpoint
	journal *os.File
	seed    uint32 // the journal's checksum seed
	records int    // records in the journal; guarded by the end's syncMu
	// torn is set when an append failed, perhaps half-way: the next flush folds the journal
	// away instead of appending behind a partial record. Guarded by the end's syncMu.
	torn bool
	lock *os.File
	// crashed lets tests stop a write at a point, as if the process died there.
	crashed func(point string) bool
}

// openStore locks role's state of the channel at addr under root and reads it: the checkpoint, or a
// fresh state if there is none yet, with the journal's newest voucher over it. The caller writes a
// new checkpoint before it uses the state (end.open does).
func openStore(root, role string, addr *address.Address) (*store, *state, error) {
	dir := ChannelDir(root, addr)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("payments: %w", err)
	}
	lock, err := lockFile(filepath.Join(dir, role+".lock"))
	if err != nil {
		return nil, nil, err
	}
	s := &store{path: filepath.Join(dir, role+".json"), seed: journalSeed(role, rawAddress(addr)), lock: lock,
		crashed: func(string) bool { return false }}
	st, err := s.read(role, addr)
	if err != nil {
		lock.Close()
		return nil, nil, err
	}
	// Created before the first checkpoint, whose directory fsync then covers it.
	s.journal, err = os.OpenFile(s.journalPath(), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("payments: %w", err)
	}
	return s, st, nil
}

func (s *store) journalPath() string { return strings.TrimSuffix(s.path, ".json") + ".journal" }

// read reads the checkpoint and the journal over it.
func (s *store) read(role string, addr *address.Address) (*state, error) {
	st := &state{Version: stateVersion, Role: role, Channel: rawAddress(addr)}
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("payments: %w", err)
	default:
		if st, err = decodeState(b); err == nil {
			err = st.checkFor(role, addr)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, s.path, err)
		}
	}
	r, _, ok, err := readJournal(s.journalPath(), s.seed)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, s.journalPath(), err)
	}
	if ok && r.Seqno > st.Seqno {
		if r.Total < st.Total {
			return nil, fmt.Errorf("%w: %s: seqno %d has total %d, below the state file's %d",
				ErrCorrupt, s.journalPath(), r.Seqno, r.Total, st.Total)
		}
		st.Seqno, st.Total = r.Seqno, r.Total
		if role == rolePayee {
			st.Signature = r.Signature[:]
		}
	}
	if role == rolePayer {
		st.Reserved = max(st.Reserved, st.Seqno) // version 1 reserved nothing past its last voucher
	}
	st.Version = stateVersion
	return st, nil
}

// checkpoint replaces the state file with st, atomically and durably. The journal's records up to st
// are then redundant: reading skips them, and truncate drops them.
func (s *store) checkpoint(st *state) error {
	b, err := encodeState(st)
	if err != nil {
		return fmt.Errorf("payments: encode state: %w", err)
	}
	// A crash before the rename leaves the old state; this point stands for one.
	if s.crashed("temp written") {
		return errSimulatedCrash
	}
	if err := atomicfile.WriteFile(s.path, b, 0o600); err != nil {
		return fmt.Errorf("payments: save %s: %w", s.path, err)
	}
	return nil
}

// fold writes st as the new checkpoint and empties the journal, which st covers; syncMu held.
func (s *store) fold(st *state) error {
	if err := s.checkpoint(st); err != nil {
		return err
	}
	return s.truncate()
}

// truncate empties the journal, durably, so that no later record can land behind an old one;
// syncMu held.
func (s *store) truncate() error {
	if s.crashed("checkpoint written") {
		return errSimulatedCrash
	}
	if err := s.journal.Truncate(0); err != nil {
		return fmt.Errorf("payments: empty %s: %w", s.journalPath(), err)
	}
	if err := s.journal.Sync(); err != nil {
		return fmt.Errorf("payments: empty %s: %w", s.journalPath(), err)
	}
	s.records, s.torn = 0, false
	return nil
}

// append writes st's voucher to the journal and fsyncs it; syncMu held.
func (s *store) append(st *state) error {
	rec := appendRecord(make([]byte, 0, recordSize), s.seed, recordOf(st))
	if s.crashed("record torn") {
		s.journal.Write(rec[:recordSize/2])
		s.torn = true
		return errSimulatedCrash
	}
	if _, err := s.journal.Write(rec); err != nil {
		s.torn = true
		return fmt.Errorf("payments: append to %s: %w", s.journalPath(), err)
	}
	if err := s.journal.Sync(); err != nil {
		s.torn = true // what the kernel had may be gone: write it all again
		return fmt.Errorf("payments: sync %s: %w", s.journalPath(), err)
	}
	s.records++
	return nil
}

func (s *store) close() error { return errors.Join(s.journal.Close(), s.lock.Close()) }

// errSimulatedCrash is what a write stopped by a test's crash point returns.
var errSimulatedCrash = errors.New("payments: simulated crash")

// FlushInterval is how long a voucher a Payer signed or a Payee accepted stays in memory only, at
// most, before a background flush appends it to the end's journal (see Sync). One flush writes the
// newest voucher whatever came before it, so an end writes at most one record per interval however
// many vouchers it handles; a crash of the process loses no more than the vouchers of the last
// interval (see the package doc for what that costs each end).
const FlushInterval = 100 * time.Millisecond

// end is what a Payer and a Payee share: the channel, one end's state of it, in memory and on disk,
// and the lock over that state.
type end struct {
	ch   contracts.ChannelConfig
	addr *address.Address
	id   [32]byte
	role string

	syncMu sync.Mutex // one flush at a time; held across its write, before mu
	mu     sync.Mutex
	store  *store
	st     state // the newest state; its voucher may not be on disk yet
	// durable is the seqno of the newest voucher on disk: st.Seqno once flushed.
	durable uint64
	// flushing is the timer of the next background flush; nil while none is due.
	flushing *time.Timer
	// flushErr is why the last background flush failed; while it is set nothing new is signed
	// or accepted, so that what a crash can lose stays bounded.
	flushErr error
	closed   bool
	// every is how long a voucher waits for its flush: FlushInterval.
	every time.Duration
	// crashed lets tests stop an operation at a point, as if the process died there.
	crashed func(point string) bool
}

// open opens (creating if needed) role's state of channel ch under dir into e, a zero end. check, if not
// nil, may refuse the channel at its address before anything is written; fix, if not nil, checks and
// amends the state read before it is written back as the new checkpoint.
func (e *end) open(dir, role string, ch contracts.ChannelConfig, check func(addr *address.Address) error, fix func(s *store, st *state) error) error {
	addr, err := ch.Address()
	if err != nil {
		return fmt.Errorf("payments: %s: %w", role, err)
	}
	if check != nil {
		if err := check(addr); err != nil {
			return err
		}
	}
	s, st, err := openStore(dir, role, addr)
	if err != nil {
		return err
	}
	if fix != nil {
		err = fix(s, st)
	}
	if err == nil {
		err = s.fold(st)
	}
	if err == nil {
		// The channel's directory entry must be as durable as the files in it.
		if err = atomicfile.SyncDir(filepath.Dir(ChannelDir(dir, addr))); err != nil {
			err = fmt.Errorf("payments: %w", err)
		}
	}
	if err != nil {
		s.close()
		return err
	}
	e.ch, e.addr, e.role, e.store, e.st, e.durable = ch, addr, role, s, *st, st.Seqno
	e.id, _ = ch.ID()
	e.every = FlushInterval
	e.crashed = func(string) bool { return false }
	return nil
}

// Config is the configuration the channel was opened with.
func (e *end) Config() contracts.ChannelConfig { return e.ch }

// Address is the channel's address.
func (e *end) Address() *address.Address { return e.addr }

// Deposit is the channel's deposit as last known, in nanoTON.
func (e *end) Deposit() uint64 { return e.state().Deposit }

// Total is the last voucher's total, in nanoTON: for a payer, what it has promised in all; for a payee,
// what the newest voucher it accepted pays.
func (e *end) Total() uint64 { return e.state().Total }

// SetDeposit records the channel's deposit, durably: after a top-up, as the payer announced it, or as
// read from the chain (Refresh does that).
func (e *end) SetDeposit(deposit uint64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.setDeposit(deposit)
}

// setDeposit is SetDeposit; e.mu held.
func (e *end) setDeposit(deposit uint64) error {
	if e.closed {
		return e.errClosed()
	}
	next := e.st
	next.Deposit = deposit
	return e.save(&next, fmt.Sprintf("set deposit to %d", deposit))
}

// state is a copy of the state, taken under e.mu.
func (e *end) state() state {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.st
}

// errClosed is the error of an operation on a closed end.
func (e *end) errClosed() error { return fmt.Errorf("%w: %s of channel %s", ErrClosed, e.role, e.addr) }

// usable says why the end may not sign or accept a voucher now: it is closed, or its last flush
// failed; e.mu held.
func (e *end) usable() error {
	if e.closed {
		return e.errClosed()
	}
	if e.flushErr != nil {
		return fmt.Errorf("payments: %s of channel %s cannot keep vouchers: %w", e.role, e.addr, e.flushErr)
	}
	return nil
}

// save records next durably in a new checkpoint, if it differs from the state; e.mu held. It is for
// what changes seldom — deposits, what the chain paid, the payer's reservations; vouchers go to the
// journal (see keep). op says what for, in an error.
func (e *end) save(next *state, op string) error {
	if next.Deposit == e.st.Deposit && next.Claimed == e.st.Claimed && next.ClaimedSeqno == e.st.ClaimedSeqno &&
		next.Seqno == e.st.Seqno && next.Total == e.st.Total && next.Reserved == e.st.Reserved {
		return nil
	}
	if err := e.store.checkpoint(next); err != nil {
		return fmt.Errorf("payments: %s on channel %s: %w", op, e.addr, err)
	}
	e.st = *next
	e.durable = max(e.durable, next.Seqno)
	return nil
}

// keep makes next, a state with a newer voucher, the end's state at once, and has a background flush
// put it on disk within e.every; e.mu held.
func (e *end) keep(next *state) {
	e.st = *next
	if e.flushing == nil && !e.closed {
		e.flushing = time.AfterFunc(e.every, e.flushLater)
	}
}

// flushLater is the background flush; a failed one is tried again after e.every.
func (e *end) flushLater() {
	e.mu.Lock()
	e.flushing = nil
	e.mu.Unlock()
	if err := e.Sync(); err != nil && !errors.Is(err, ErrClosed) {
		e.mu.Lock()
		if e.flushing == nil && !e.closed {
			e.flushing = time.AfterFunc(e.every, e.flushLater)
		}
		e.mu.Unlock()
	}
}

// Sync puts the newest voucher on disk now, and returns when it is there (or why it is not). Vouchers
// reach the disk by themselves within FlushInterval; Sync is for the moments that must not wait, and
// Close calls it. A Payee syncs before each claim.
func (e *end) Sync() error {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return e.errClosed()
	}
	st := e.st
	if st.Seqno <= e.durable {
		e.mu.Unlock()
		return nil
	}
	if e.store.records >= maxRecords || e.store.torn {
		// Fold the journal into a checkpoint; seldom enough to hold mu across it.
		err := e.store.fold(&st)
		e.flushed(&st, err)
		e.mu.Unlock()
		return err
	}
	e.mu.Unlock()
	err := e.store.append(&st)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.flushed(&st, err)
	return err
}

// flushed records the outcome of a flush of st; e.mu held.
func (e *end) flushed(st *state, err error) {
	if err != nil {
		e.flushErr = fmt.Errorf("flush of seqno %d: %w", st.Seqno, err)
		return
	}
	e.durable, e.flushErr = max(e.durable, st.Seqno), nil
}

// refresh reads the channel's state from c and hands it to take, with e.mu held.
func (e *end) refresh(ctx context.Context, c chain.Chain, take func(*contracts.ChannelState) error) (*contracts.ChannelState, error) {
	st, err := State(ctx, c, e.addr)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return st, take(st)
}

// Close puts the state on disk as a last checkpoint (final, a payer's, gives back the seqnos it
// reserved and did not use) and releases it. The Payer or Payee cannot be used after it.
func (e *end) Close() error { return e.closeWith(nil) }

// closeWith is Close; final, if not nil, amends the last checkpoint.
func (e *end) closeWith(final func(st *state)) error {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	if e.flushing != nil {
		e.flushing.Stop()
		e.flushing = nil
	}
	st := e.st
	if final != nil {
		final(&st)
	}
	err := e.store.fold(&st)
	if err != nil {
		err = fmt.Errorf("payments: close of the %s of channel %s: %w", e.role, e.addr, err)
	}
	return errors.Join(err, e.store.close())
}
