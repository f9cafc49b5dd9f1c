// Package local is an embedded, single-process blockchain that runs real TON contracts in the pure-Go TVM
// of tonutils-go: a message queue and an account store around tvm.EmulateTransaction, persisted on disk,
// with a faucet. It is the same idea as @ton/sandbox's Blockchain, in Go.
//
// It is a local chain, not TON: there is no consensus, no validators and no other copy of the state. One
// process owns the state directory (a lock file enforces it); other processes reach the chain through
// Serve and Dial. Balances are not Toncoin.
//
// Each external message (or faucet credit) is one "block": it is applied with every internal message it
// causes, transitively, before the next one starts, all at the same unix time and with logical time
// increasing across transactions. Persistence: see the Chain type.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-go/cocoon/chain"
)

// Name is what a local chain calls itself (chain.Chain.Name).
const Name = "local"

// Note is the warning a local chain prints in its logs and status.
const Note = "local chain: simulated on this machine with the TVM of tonutils-go, no consensus; not TON, balances are not Toncoin"

// FaucetAddress is the source of faucet credits: an address with no account, in every faucet
// transaction's inbound message, so credits out of thin air are recognisable in history.
var FaucetAddress = address.NewAddress(0, 0, faucetID[:])

var faucetID = sha256.Sum256([]byte("cocoon/chain/local faucet"))

// MaxMinted bounds the total the faucet may ever create, so that sums of balances fit in uint64.
const MaxMinted = 1 << 62

// GetMethodGas is the gas limit of a get-method.
const GetMethodGas = 1_000_000

// maxCascade bounds the transactions one external message may cause; beyond it the message is refused
// as a whole (on TON such a ping-pong would run until its fees ate the value).
const maxCascade = 10_000

var (
	// ErrClosed is returned by a Chain after Close.
	ErrClosed = errors.New("local: chain closed")
	// ErrLocked is returned by Open when another process (or Chain) owns the directory.
	ErrLocked = errors.New("local: state directory in use by another process")
)

// Options configures Open. The zero value is usable.
type Options struct {
	// Now is the clock. Tests pin it; the chain never lets time go backwards, whatever Now returns.
	// Default time.Now.
	Now func() time.Time
	// Logger receives the chain's logs, each with chain=local. Default slog.Default().
	Logger *slog.Logger
	// SnapshotEvery is how many applied messages pass between snapshots. Default 1000.
	SnapshotEvery int
	// NoSync skips fsync. The state still survives the process being killed (the kernel has the bytes),
	// but not the machine crashing. For tests and benchmarks.
	NoSync bool
}

// Chain is a local blockchain. It implements chain.Chain and chain.Faucet; it is safe for concurrent use.
//
// Persistence is a write-ahead journal plus snapshots, in its directory. Applying a message is: run it and
// its whole cascade in memory; append an "in" record (the message, its time) to the journal and fsync;
// append a "done" record (every changed account, every transaction, the counters) and fsync; publish.
// Reopening replays done records on top of the last snapshot, drops a torn last record, and applies again
// an "in" record that has no "done" record, so a kill at any point loses nothing that was acknowledged
// and applies nothing twice. Every SnapshotEvery messages, and on Close, the whole state is written to a
// temporary file, fsynced, renamed over the snapshot, and the journal is emptied; records a snapshot
// already holds are skipped by sequence number, so a kill between those steps is harmless too.
type Chain struct {
	log  *slog.Logger
	now  func() time.Time
	opts Options
	cfg  *tvm.PreparedBlockchainConfig
	vm   *tvm.TVM

	mu        sync.RWMutex
	accounts  map[string]*account // by raw address
	st        counters
	seq       uint64        // sequence number of the last journal record
	changed   chan struct{} // closed and replaced at every commit
	store     *store
	sinceSnap int
	closed    bool

	crash func(step string) bool // test hook: true simulates a kill at step
}

// counters is the chain-wide state besides accounts.
type counters struct {
	LT           uint64 `json:"lt"`  // next free logical time
	Now          uint32 `json:"now"` // unix time of the last applied message
	Minted       uint64 `json:"minted"`
	Fees         uint64 `json:"fees"`
	FwdFees      uint64 `json:"fwd_fees"`
	Transactions uint64 `json:"transactions"`
}

type account struct {
	addr  *address.Address
	prep  *tvm.PreparedAccount
	state *chain.Account
	txs   []*chain.Transaction // ascending logical time
}

// Open opens (creating if needed) the local chain stored in dir.
func Open(dir string, opts *Options) (*Chain, error) {
	c := &Chain{accounts: map[string]*account{}, changed: make(chan struct{}), vm: tvm.NewTVM()}
	if opts != nil {
		c.opts = *opts
	}
	c.now = c.opts.Now
	if c.now == nil {
		c.now = time.Now
	}
	if c.opts.SnapshotEvery <= 0 {
		c.opts.SnapshotEvery = 1000
	}
	c.log = c.opts.Logger
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("chain", Name)

	root, err := Config()
	if err != nil {
		return nil, err
	}
	if c.cfg, err = tvm.PrepareBlockchainConfig(root); err != nil {
		return nil, fmt.Errorf("local: prepare config: %w", err)
	}
	c.st.LT = 1_000_000

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("local: %w", err)
	}
	if c.store, err = openStore(dir, !c.opts.NoSync); err != nil {
		return nil, err
	}
	if err := c.recover(); err != nil {
		c.store.close()
		return nil, err
	}
	c.log.Warn(Note, "dir", dir, "accounts", len(c.accounts), "transactions", c.st.Transactions, "global_id", GlobalID)
	return c, nil
}

// Close writes a snapshot and releases the directory. Waiters in WaitTransaction return ErrClosed.
func (c *Chain) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	err := c.snapshot()
	c.closed = true
	close(c.changed)
	if cerr := c.store.close(); err == nil {
		err = cerr
	}
	return err
}

// Name returns "local".
func (c *Chain) Name() string { return Name }

// GlobalID returns GlobalID.
func (c *Chain) GlobalID() int32 { return GlobalID }

// Now returns the time the next message would be applied at.
func (c *Chain) Now(context.Context) (time.Time, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return time.Unix(int64(c.unixNow()), 0), nil
}

// unixNow is the clock, never before the last applied message. Callers hold mu.
func (c *Chain) unixNow() uint32 {
	now := uint32(c.now().Unix())
	if now < c.st.Now {
		now = c.st.Now
	}
	return now
}

// Account returns the state of addr.
func (c *Chain) Account(_ context.Context, addr *address.Address) (*chain.Account, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, ErrClosed
	}
	if a := c.accounts[addr.StringRaw()]; a != nil {
		acc := *a.state
		return &acc, nil
	}
	return &chain.Account{Address: addr, Status: tlb.AccountStatusNonExist}, nil
}

// Transactions returns up to limit transactions of addr below beforeLT (0: from the newest), newest first.
func (c *Chain) Transactions(_ context.Context, addr *address.Address, beforeLT uint64, limit int) ([]*chain.Transaction, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, ErrClosed
	}
	a := c.accounts[addr.StringRaw()]
	if a == nil {
		return nil, nil
	}
	end := len(a.txs)
	if beforeLT != 0 {
		end = sort.Search(len(a.txs), func(i int) bool { return a.txs[i].LT >= beforeLT })
	}
	var out []*chain.Transaction
	for i := end - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, a.txs[i])
	}
	return out, nil
}

// WaitTransaction returns the first transaction of addr after afterLT, waiting until ctx is done.
func (c *Chain) WaitTransaction(ctx context.Context, addr *address.Address, afterLT uint64) (*chain.Transaction, error) {
	key := addr.StringRaw()
	for {
		c.mu.RLock()
		var tx *chain.Transaction
		if a := c.accounts[key]; a != nil {
			if i := sort.Search(len(a.txs), func(i int) bool { return a.txs[i].LT > afterLT }); i < len(a.txs) {
				tx = a.txs[i]
			}
		}
		changed, closed := c.changed, c.closed
		c.mu.RUnlock()
		if tx != nil {
			return tx, nil
		}
		if closed {
			return nil, ErrClosed
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("local: wait for a transaction of %s after lt %d: %w", addr.StringRaw(), afterLT, ctx.Err())
		}
	}
}

// SendExternal applies an external inbound message and everything it causes. It returns when the whole
// cascade is applied and on disk; a message the contract does not accept is chain.ErrRejected and leaves
// no trace.
func (c *Chain) SendExternal(_ context.Context, msg *cell.Cell) error {
	m, err := tvm.PrepareMessage(msg)
	if err != nil {
		return fmt.Errorf("%w: %w", chain.ErrRejected, err)
	}
	if m.Message().MsgType != tlb.MsgTypeExternalIn {
		return fmt.Errorf("%w: not an external inbound message: %s", chain.ErrRejected, m.Message().MsgType)
	}
	if _, err := destination(m.Message()); err != nil {
		return fmt.Errorf("%w: %w", chain.ErrRejected, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	_, err = c.apply(input{Msg: msg, Now: c.unixNow()})
	return err
}

// Fund credits amount nanoTON to addr out of thin air, with a non-bouncing internal message from
// FaucetAddress, and returns addr's transaction. The amount is booked as minted (see Supply).
func (c *Chain) Fund(_ context.Context, addr *address.Address, amount uint64) (*chain.Transaction, error) {
	if amount == 0 {
		return nil, errors.New("local: fund: zero amount")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if amount > MaxMinted-c.st.Minted {
		return nil, fmt.Errorf("local: fund %d nanoTON: the faucet has minted %d of at most %d", amount, c.st.Minted, uint64(MaxMinted))
	}
	now := c.unixNow()
	msg, err := faucetMessage(addr, amount, c.st.LT, now)
	if err != nil {
		return nil, fmt.Errorf("local: fund: %w", err)
	}
	return c.apply(input{Msg: msg, Now: now, Mint: amount})
}

// Supply is where all value on the chain is. Value is conserved when Minted equals
// Balances + Fees + FwdFees (see Conserved).
type Supply struct {
	Minted   uint64 `json:"minted"`       // created by the faucet
	Balances uint64 `json:"balances"`     // sum of all account balances
	Fees     uint64 `json:"fees"`         // total fees of all transactions (gas, storage, import, action, bounce)
	FwdFees  uint64 `json:"forward_fees"` // forwarding fees carried by internal messages, paid on delivery
}

// Conserved reports whether no value was created or destroyed other than by the faucet.
func (s Supply) Conserved() bool { return s.Minted == s.Balances+s.Fees+s.FwdFees }

// Supply adds up all value on the chain.
func (c *Chain) Supply() Supply {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.supply()
}

func (c *Chain) supply() Supply {
	s := Supply{Minted: c.st.Minted, Fees: c.st.Fees, FwdFees: c.st.FwdFees}
	for _, a := range c.accounts {
		s.Balances += a.state.Balance
	}
	return s
}

// Status describes a local chain; Chain is always "local" and Note says what that means.
type Status struct {
	Chain        string    `json:"chain"`
	Note         string    `json:"note"`
	GlobalID     int32     `json:"global_id"`
	Now          time.Time `json:"now"`
	LT           uint64    `json:"lt"`
	Accounts     int       `json:"accounts"`
	Transactions uint64    `json:"transactions"`
	Supply       Supply    `json:"supply"`
}

// Status reports the chain's state.
func (c *Chain) Status() Status {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return Status{
		Chain:        Name,
		Note:         Note,
		GlobalID:     GlobalID,
		Now:          time.Unix(int64(c.unixNow()), 0).UTC(),
		LT:           c.st.LT,
		Accounts:     len(c.accounts),
		Transactions: c.st.Transactions,
		Supply:       c.supply(),
	}
}

// blockSeed is the random seed of the "block" applying journal record seq: fixed by the record, so that
// applying it again after a crash gives the same result.
func blockSeed(seq uint64, msg *cell.Cell) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], seq)
	h := sha256.New()
	h.Write(b[:])
	h.Write(msg.Hash())
	return h.Sum(nil)
}

// faucetMessage is the internal message of a faucet credit.
func faucetMessage(to *address.Address, amount, lt uint64, now uint32) (*cell.Cell, error) {
	return tlb.ToCell(&tlb.InternalMessage{
		IHRDisabled: true,
		SrcAddr:     FaucetAddress,
		DstAddr:     to,
		Amount:      chain.Coins(amount),
		CreatedLT:   lt,
		CreatedAt:   now,
	})
}
