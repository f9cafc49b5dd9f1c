// Package accounts keeps the proxy's books: what each client owes for the
// answers it received and what each worker earned for serving them.
//
// Ledger is the interface the proxy meters through. File is the spine's
// implementation, an append-only journal in the data directory; the TON
// payment channels replace it with vouchers settled on chain.
package accounts

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/cocoon-go/cocoon/price"
)

// ErrCreditLimit is the error for a client whose unpaid answers reach its credit.
var ErrCreditLimit = errors.New("accounts: client has reached its credit limit")

// Entry is one metered answer, taken from a verified usage receipt.
type Entry struct {
	Time      int64       `json:"time"`
	RequestID string      `json:"request_id"` // hex
	Client    string      `json:"client"`     // hex Ed25519 key of the client
	Worker    string      `json:"worker"`     // hex key id of the worker
	Model     string      `json:"model"`
	Usage     price.Usage `json:"usage"`
	Cost      uint64      `json:"cost"`       // nanoTON the client pays
	WorkerPay uint64      `json:"worker_pay"` // nanoTON the worker earns
}

// Account is the running total of one client or worker.
type Account struct {
	Requests uint64 `json:"requests"`
	Tokens   uint64 `json:"tokens"`
	Amount   uint64 `json:"amount"` // owed by a client, earned by a worker, nanoTON
}

// Ledger meters requests.
type Ledger interface {
	// Record books one answer. Recording the same request id twice books it once.
	Record(e Entry) error
	// Client and Worker return running totals.
	Client(id string) Account
	Worker(id string) Account
	Close() error
}

// File is a Ledger kept as a journal of JSON lines, replayed on open.
type File struct {
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	seen    map[string]bool
	clients map[string]*Account
	workers map[string]*Account
}

// OpenFile opens or creates the journal at path.
func OpenFile(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	l := &File{f: f, seen: map[string]bool{},
		clients: map[string]*Account{}, workers: map[string]*Account{}}
	// Replay; a torn last line (a crash mid-write) is cut off.
	r := bufio.NewReader(f)
	var good int64
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			break
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("accounts: reading %s: %w", path, err)
		}
		var e Entry
		if json.Unmarshal(line, &e) != nil {
			break
		}
		l.apply(e)
		good += int64(len(line))
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, fmt.Errorf("accounts: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("accounts: %w", err)
	}
	l.w = bufio.NewWriter(f)
	return l, nil
}

func (l *File) apply(e Entry) bool {
	if l.seen[e.RequestID] {
		return false
	}
	l.seen[e.RequestID] = true
	tokens := e.Usage.PromptTokens + e.Usage.CompletionTokens
	add(l.clients, e.Client, tokens, e.Cost)
	add(l.workers, e.Worker, tokens, e.WorkerPay)
	return true
}

func add(m map[string]*Account, id string, tokens, amount uint64) {
	a := m[id]
	if a == nil {
		a = &Account{}
		m[id] = a
	}
	a.Requests++
	a.Tokens += tokens
	a.Amount += amount
}

// Record implements Ledger. The entry is written through to the file before
// Record returns, so a crash afterwards loses nothing.
func (l *File) Record(e Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.apply(e) {
		return nil
	}
	l.w.Write(b)
	l.w.WriteByte('\n')
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("accounts: writing journal: %w", err)
	}
	return nil
}

// Client implements Ledger.
func (l *File) Client(id string) Account { return l.get(l.clients, id) }

// Worker implements Ledger.
func (l *File) Worker(id string) Account { return l.get(l.workers, id) }

func (l *File) get(m map[string]*Account, id string) Account {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a := m[id]; a != nil {
		return *a
	}
	return Account{}
}

// Close syncs and closes the journal.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Flush()
	l.f.Sync()
	return l.f.Close()
}
