package local

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/internal/atomicfile"
)

// Files in a local chain's directory. Their names say what they are to whoever lists the directory.
const (
	journalFile  = "local-chain.journal"
	snapshotFile = "local-chain.snapshot"
	lockFile     = "local-chain.lock"
)

// record is one journal entry: In (a message about to be applied) or Done (what applying it changed).
type record struct {
	Seq  uint64      `json:"seq"`
	In   *inRecord   `json:"in,omitempty"`
	Done *doneRecord `json:"done,omitempty"`
}

type inRecord struct {
	Msg  []byte `json:"msg"` // BoC of the inbound message
	Now  uint32 `json:"now"`
	Mint uint64 `json:"mint,omitempty"`
}

type doneRecord struct {
	In       uint64          `json:"in"`                 // Seq of the in record
	Rejected string          `json:"rejected,omitempty"` // why nothing changed, after a crash only
	Accounts []accountRecord `json:"accounts,omitempty"`
	State    counters        `json:"state"` // counters after
}

// accountRecord is an account's state (a ShardAccount BoC) and transactions: the new ones in a done
// record, all of them in a snapshot.
type accountRecord struct {
	Addr  string   `json:"addr"`
	Shard []byte   `json:"shard"`
	Txs   [][]byte `json:"txs,omitempty"`
}

type snapshot struct {
	Note     string          `json:"note"`
	Seq      uint64          `json:"seq"` // last journal record included
	State    counters        `json:"state"`
	Accounts []accountRecord `json:"accounts"`
}

func (o *outcome) record(in uint64) *doneRecord {
	d := &doneRecord{In: in, State: o.st}
	for _, key := range o.order {
		d.Accounts = append(d.Accounts, o.accounts[key].record())
	}
	return d
}

func (a *account) record() accountRecord {
	r := accountRecord{Addr: a.addr.StringRaw(), Shard: a.prep.ShardAccountCell().ToBOC()}
	for _, tx := range a.txs {
		r.Txs = append(r.Txs, tx.Cell.ToBOC())
	}
	return r
}

// load sets an account from a record, appending its transactions.
func (c *Chain) load(r accountRecord) error {
	addr, err := address.ParseRawAddr(r.Addr)
	if err != nil {
		return fmt.Errorf("local: state: %w", err)
	}
	sc, err := cell.FromBOC(r.Shard)
	if err != nil {
		return fmt.Errorf("local: state of %s: %w", r.Addr, err)
	}
	var sa tlb.ShardAccount
	if err := tlb.Parse(&sa, sc); err != nil {
		return fmt.Errorf("local: state of %s: %w", r.Addr, err)
	}
	prep, err := tvm.PrepareAccount(&sa, addr)
	if err != nil {
		return fmt.Errorf("local: state of %s: %w", r.Addr, err)
	}
	a, err := newAccount(addr, prep)
	if err != nil {
		return err
	}
	if prev := c.accounts[r.Addr]; prev != nil {
		a.txs = prev.txs
	}
	for _, b := range r.Txs {
		txc, err := cell.FromBOC(b)
		if err != nil {
			return fmt.Errorf("local: transaction of %s: %w", r.Addr, err)
		}
		tx, err := chain.ParseTransaction(addr.Workchain(), txc)
		if err != nil {
			return err
		}
		a.txs = append(a.txs, tx)
	}
	c.accounts[r.Addr] = a
	return nil
}

// recover rebuilds the state from the snapshot and the journal, then finishes an interrupted message.
func (c *Chain) recover() error {
	snap, err := c.store.readSnapshot()
	if err != nil {
		return err
	}
	if snap != nil {
		for _, r := range snap.Accounts {
			if err := c.load(r); err != nil {
				return err
			}
		}
		c.seq, c.st = snap.Seq, snap.State
	}
	recs, err := c.store.readJournal(c.log)
	if err != nil {
		return err
	}
	var pending *record
	for _, r := range recs {
		if r.Seq <= c.seq { // already in the snapshot
			continue
		}
		if r.Seq != c.seq+1 {
			return fmt.Errorf("local: journal record %d follows record %d", r.Seq, c.seq)
		}
		c.seq = r.Seq
		switch {
		case r.In != nil && pending == nil:
			pending = r
		case r.Done != nil && pending != nil && r.Done.In == pending.Seq:
			for _, a := range r.Done.Accounts {
				if err := c.load(a); err != nil {
					return err
				}
			}
			c.st, pending = r.Done.State, nil
			c.sinceSnap++ // the journal holds it until the next snapshot
		default:
			return fmt.Errorf("local: journal record %d out of order", r.Seq)
		}
	}
	if pending == nil {
		return nil
	}

	// Killed between journaling a message and recording its outcome: apply it now, at the time it came.
	msg, err := cell.FromBOC(pending.In.Msg)
	if err != nil {
		return fmt.Errorf("local: journal record %d: %w", pending.Seq, err)
	}
	done := &doneRecord{In: pending.Seq, State: c.st}
	o, err := c.run(pending.Seq, input{Msg: msg, Now: pending.In.Now, Mint: pending.In.Mint})
	if err != nil {
		done.Rejected = err.Error()
	} else {
		done = o.record(pending.Seq)
	}
	if err := c.store.append(&record{Seq: pending.Seq + 1, Done: done}); err != nil {
		return err
	}
	c.seq = pending.Seq + 1
	if o != nil {
		c.commit(o)
	}
	c.log.Info("applied a message whose application a crash interrupted", "record", pending.Seq, "msg", fmt.Sprintf("%x", msg.Hash()), "rejected", done.Rejected)
	return nil
}

// snapshot writes the whole state and empties the journal. Callers hold mu for writing.
func (c *Chain) snapshot() error {
	snap := &snapshot{Note: Note, Seq: c.seq, State: c.st}
	keys := make([]string, 0, len(c.accounts))
	for k := range c.accounts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		snap.Accounts = append(snap.Accounts, c.accounts[k].record())
	}
	if err := c.store.writeSnapshot(snap, c.crashed); err != nil {
		return err
	}
	c.sinceSnap = 0
	return nil
}

// store is the files of a local chain's directory.
type store struct {
	dir     string
	sync    bool
	lock    *os.File
	journal *os.File
}

func openStore(dir string, sync bool) (*store, error) {
	lock, err := lockDir(filepath.Join(dir, lockFile))
	if err != nil {
		return nil, err
	}
	j, err := os.OpenFile(filepath.Join(dir, journalFile), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("local: %w", err)
	}
	return &store{dir: dir, sync: sync, lock: lock, journal: j}, nil
}

func (s *store) close() error {
	err := s.journal.Close()
	s.lock.Close() // closing the file releases the lock
	return err
}

// Journal framing: 4-byte little-endian length, 4-byte CRC-32C of the payload, JSON payload.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

const maxRecord = 256 << 20

func (s *store) append(r *record) error {
	payload, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	frame := make([]byte, 8, 8+len(payload))
	binary.LittleEndian.PutUint32(frame, uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[4:], crc32.Checksum(payload, crcTable))
	if _, err := s.journal.Write(append(frame, payload...)); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if s.sync {
		if err := s.journal.Sync(); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	return nil
}

// readJournal returns every whole record and cuts off a torn or corrupt tail, which is what a kill
// during a write leaves.
func (s *store) readJournal(log interface{ Warn(string, ...any) }) ([]*record, error) {
	data, err := io.ReadAll(io.NewSectionReader(s.journal, 0, 1<<62))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var recs []*record
	off := 0
	for off < len(data) {
		rest := data[off:]
		if len(rest) < 8 {
			break
		}
		n := int(binary.LittleEndian.Uint32(rest))
		if n > maxRecord || len(rest) < 8+n {
			break
		}
		payload := rest[8 : 8+n]
		if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(rest[4:]) {
			break
		}
		r := new(record)
		if err := json.Unmarshal(payload, r); err != nil {
			break
		}
		recs = append(recs, r)
		off += 8 + n
	}
	if off < len(data) {
		log.Warn("journal: dropping a torn record at its end", "offset", off, "bytes", len(data)-off)
		if err := s.journal.Truncate(int64(off)); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
		if err := s.journal.Sync(); err != nil {
			return nil, fmt.Errorf("journal: %w", err)
		}
	}
	return recs, nil
}

func (s *store) readSnapshot() (*snapshot, error) {
	data, err := os.ReadFile(filepath.Join(s.dir, snapshotFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	snap := new(snapshot)
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(snap); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return snap, nil
}

// writeSnapshot replaces the snapshot atomically (write, fsync, rename, fsync the directory), then
// empties the journal. crashed lets tests stop between the steps.
func (s *store) writeSnapshot(snap *snapshot, crashed func(string) bool) error {
	data, err := json.Marshal(snap)
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	// A crash before the rename leaves the old snapshot; this point stands for one.
	if crashed("snapshot written") {
		return errSimulatedCrash
	}
	write := atomicfile.WriteFile
	if !s.sync {
		write = atomicfile.WriteFileNoSync
	}
	if err := write(filepath.Join(s.dir, snapshotFile), data, 0o600); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if crashed("snapshot renamed") {
		return errSimulatedCrash
	}
	if err := s.journal.Truncate(0); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if s.sync {
		if err := s.journal.Sync(); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	return nil
}
