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

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/internal/atomicfile"
)

// stateVersion is the format of the state files; a file with another version is refused.
const stateVersion = 1

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
	if st.Version != stateVersion {
		return nil, fmt.Errorf("version %d, this build reads %d", st.Version, stateVersion)
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

// store is one state file and its lock.
type store struct {
	path string
	lock *os.File
	// crashed lets tests stop a write at a point, as if the process died there.
	crashed func(point string) bool
}

// openStore locks role's state of the channel at addr under root and reads it; a state that does
// not exist yet is a fresh one, written at once.
func openStore(root, role string, addr *address.Address) (*store, *state, error) {
	dir := ChannelDir(root, addr)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("payments: %w", err)
	}
	lock, err := lockFile(filepath.Join(dir, role+".lock"))
	if err != nil {
		return nil, nil, err
	}
	s := &store{path: filepath.Join(dir, role+".json"), lock: lock, crashed: func(string) bool { return false }}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		st := &state{Version: stateVersion, Role: role, Channel: rawAddress(addr)}
		if err := s.save(st); err != nil {
			lock.Close()
			return nil, nil, err
		}
		// The channel's directory entry must be as durable as the file in it.
		if err := atomicfile.SyncDir(filepath.Dir(dir)); err != nil {
			lock.Close()
			return nil, nil, fmt.Errorf("payments: %w", err)
		}
		return s, st, nil
	}
	if err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("payments: %w", err)
	}
	st, err := decodeState(b)
	if err == nil {
		err = st.checkFor(role, addr)
	}
	if err != nil {
		lock.Close()
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, s.path, err)
	}
	return s, st, nil
}

// save replaces the state file with st, atomically and durably.
func (s *store) save(st *state) error {
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

func (s *store) close() error { return s.lock.Close() }

// errSimulatedCrash is what a write stopped by a test's crash point returns.
var errSimulatedCrash = errors.New("payments: simulated crash")

// end is what a Payer and a Payee share: the channel, one end's state of it on disk, and the lock
// over that state.
type end struct {
	ch   contracts.ChannelConfig
	addr *address.Address
	id   [32]byte
	role string

	mu     sync.Mutex
	store  *store
	st     state
	closed bool
	// crashed lets tests stop an operation at a point, as if the process died there.
	crashed func(point string) bool
}

// open opens (creating if needed) role's state of channel ch under dir into e, a zero end. check, if not
// nil, may refuse the channel at its address before anything is written.
func (e *end) open(dir, role string, ch contracts.ChannelConfig, check func(addr *address.Address) error) error {
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
	e.ch, e.addr, e.role, e.store, e.st = ch, addr, role, s, *st
	e.id, _ = ch.ID()
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

// SetDeposit records the channel's deposit: after a top-up, as the payer announced it, or as read from
// the chain (Refresh does that).
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

// save records next, if it differs from the state; e.mu held. op says what for, in an error.
func (e *end) save(next *state, op string) error {
	if next.Deposit == e.st.Deposit && next.Claimed == e.st.Claimed && next.ClaimedSeqno == e.st.ClaimedSeqno &&
		next.Seqno == e.st.Seqno && next.Total == e.st.Total {
		return nil
	}
	if err := e.store.save(next); err != nil {
		return fmt.Errorf("payments: %s on channel %s: %w", op, e.addr, err)
	}
	e.st = *next
	return nil
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

// Close releases the state. The Payer or Payee cannot be used after it.
func (e *end) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	return e.store.close()
}
