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
	"time"

	"github.com/cocoon-go/cocoon/price"
)

// ErrCreditLimit is the error for a client whose unpaid answers, with what
// its requests in flight may still cost, would pass its credit.
var ErrCreditLimit = errors.New("accounts: client has reached its credit limit")

// ErrDuplicate is the error for a request id its client has used before:
// admitted, in flight or booked, until the request expires.
var ErrDuplicate = errors.New("accounts: request id already used by this client")

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
	// Expires is when the sealed request expired (unix seconds): until
	// then a journal replayed at start refuses its id again.
	Expires int64 `json:"expires,omitempty"`
	// APIKey names the API key of the client's app that spent Cost (client
	// side only; see client.APIKey), so its spending limit holds across
	// restarts.
	APIKey string `json:"api_key,omitempty"`
}

// Account is the running total of one client or worker.
type Account struct {
	Requests uint64 `json:"requests"`
	Tokens   uint64 `json:"tokens"`
	Amount   uint64 `json:"amount"` // owed by a client, earned by a worker, nanoTON
}

// Ledger meters requests.
type Ledger interface {
	// Record books one answer. An entry whose (client, request id) was
	// booked before is ErrDuplicate and books nothing.
	Record(e Entry) error
	// Client and Worker return running totals.
	Client(id string) Account
	Worker(id string) Account
	Close() error
}

// Credit is what a client may owe the proxy, as its payment channels say.
type Credit struct {
	// Allowance bounds what the client may leave unpaid, requests in
	// flight included: min(credit limit, deposit not yet covered by
	// vouchers) for a client paying by channel.
	Allowance uint64
	// Paid is what the client's vouchers cover, over all its channels.
	Paid uint64
}

// File is a Ledger kept as a journal of JSON lines, replayed on open. It
// also admits requests (see Admit): it remembers every (client, request
// id) it has admitted or booked until the request expires, and holds what
// each request in flight may cost against its client's credit.
type File struct {
	mu      sync.Mutex
	f       *os.File
	w       *bufio.Writer
	used    map[requestKey]int64 // admitted or booked → expiry, unix seconds
	booked  map[requestKey]bool  // booked, among used
	held    map[string]uint64    // by client: what its admitted requests may still cost
	clients map[string]*Account
	workers map[string]*Account
	apiKeys map[string]*Account // by Entry.APIKey
	prune   int64               // when used is next pruned
	now     func() time.Time
}

// requestKey names a request: request ids are the client's choice, so
// they are unique only per client.
type requestKey struct{ client, id string }

// OpenFile opens or creates the journal at path.
func OpenFile(path string) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	l := &File{f: f, used: map[requestKey]int64{}, booked: map[requestKey]bool{}, held: map[string]uint64{},
		clients: map[string]*Account{}, workers: map[string]*Account{}, apiKeys: map[string]*Account{}, now: time.Now}
	// Replay; a torn last line (a crash mid-write) is cut off. Only the
	// ids of requests not yet expired are remembered: an expired request
	// is refused before it is admitted, so the others cannot come back.
	now := l.now().Unix()
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
		l.apply(e, now, false)
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

// recordLifetime is how long the id of an entry booked without an expiry
// is remembered.
const recordLifetime = 10 * 60

// apply books e in memory unless its request was booked before; l.mu held.
// live is false while the journal is replayed.
func (l *File) apply(e Entry, now int64, live bool) bool {
	k := requestKey{e.Client, e.RequestID}
	if l.booked[k] {
		return false
	}
	exp := e.Expires
	if exp == 0 && live {
		exp = now + recordLifetime
	}
	if exp > now {
		l.booked[k] = true
		l.used[k] = max(l.used[k], exp)
	}
	tokens := e.Usage.PromptTokens + e.Usage.CompletionTokens
	add(l.clients, e.Client, tokens, e.Cost)
	add(l.workers, e.Worker, tokens, e.WorkerPay)
	if e.APIKey != "" {
		add(l.apiKeys, e.APIKey, tokens, e.Cost)
	}
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
	return l.record(e, b)
}

// record books e, encoded as b; l.mu held.
func (l *File) record(e Entry, b []byte) error {
	if !l.apply(e, l.now().Unix(), true) {
		return fmt.Errorf("%w: client %.16s, request %s", ErrDuplicate, e.Client, e.RequestID)
	}
	l.w.Write(b)
	l.w.WriteByte('\n')
	if err := l.w.Flush(); err != nil {
		return fmt.Errorf("accounts: writing journal: %w", err)
	}
	return nil
}

// Ticket is an admitted request: its id is taken and what it may cost is
// held against its client's credit until it is booked or released.
type Ticket struct {
	l      *File
	key    requestKey
	hold   uint64
	closed bool // booked or released; guarded by l.mu
}

// Admit takes request id of client, valid until expires (unix seconds), for
// one answer that may cost up to hold nanoTON. It refuses ErrDuplicate for
// an id the client has used before (admitted, in flight or booked), and,
// unless credit is nil (no limit), ErrCreditLimit when what the client
// leaves unpaid (booked less credit.Paid) with what its admitted requests
// may cost, this one included, would pass credit.Allowance. Admission and
// the credit check happen under one lock, so concurrent requests cannot
// overshoot the credit together.
func (l *File) Admit(client, id string, expires int64, hold uint64, credit *Credit) (*Ticket, error) {
	k := requestKey{client, id}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now().Unix()
	l.pruneUsed(now)
	if exp, ok := l.used[k]; ok && exp > now {
		return nil, fmt.Errorf("%w: client %.16s, request %s", ErrDuplicate, client, id)
	}
	if credit != nil {
		owed := l.clients[client].amount()
		unpaid := owed - min(owed, credit.Paid)
		need := unpaid + l.held[client]
		if need > credit.Allowance || hold > credit.Allowance-need {
			return nil, fmt.Errorf("%w: %d nanoTON unpaid, %d held for requests in flight, this one may cost %d; allowed %d",
				ErrCreditLimit, unpaid, l.held[client], hold, credit.Allowance)
		}
	}
	l.used[k] = expires
	l.held[client] += hold
	return &Ticket{l: l, key: k, hold: hold}, nil
}

// pruneUsed forgets expired request ids, once a minute; l.mu held.
func (l *File) pruneUsed(now int64) {
	if now < l.prune {
		return
	}
	l.prune = now + 60
	for k, exp := range l.used {
		if exp <= now {
			delete(l.used, k)
			delete(l.booked, k)
		}
	}
}

// Book records e, the answer to t's request, and releases t's hold. e must
// be for t's client and request id; the id stays taken until it expires.
func (t *Ticket) Book(e Entry) error {
	if e.Client != t.key.client || e.RequestID != t.key.id {
		return fmt.Errorf("accounts: entry for client %.16s request %s booked on the ticket of %.16s request %s", e.Client, e.RequestID, t.key.client, t.key.id)
	}
	e.Expires = t.l.usedUntil(t.key)
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("accounts: %w", err)
	}
	l := t.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.closed {
		return fmt.Errorf("%w: client %.16s, request %s", ErrDuplicate, t.key.client, t.key.id)
	}
	t.release()
	return l.record(e, b)
}

// Release gives back t's hold without booking anything (the request was not
// served); the id stays taken until it expires. Releasing twice, or after
// Book, does nothing.
func (t *Ticket) Release() {
	t.l.mu.Lock()
	defer t.l.mu.Unlock()
	if !t.closed {
		t.release()
	}
}

// release gives back t's hold; l.mu held.
func (t *Ticket) release() {
	t.closed = true
	l := t.l
	if l.held[t.key.client] -= t.hold; l.held[t.key.client] == 0 {
		delete(l.held, t.key.client)
	}
}

func (l *File) usedUntil(k requestKey) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.used[k]
}

// Held is what the admitted, unbooked requests of client may still cost.
func (l *File) Held(client string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.held[client]
}

func (a *Account) amount() uint64 {
	if a == nil {
		return 0
	}
	return a.Amount
}

// Client implements Ledger.
func (l *File) Client(id string) Account { return l.get(l.clients, id) }

// Worker implements Ledger.
func (l *File) Worker(id string) Account { return l.get(l.workers, id) }

// APIKey returns the running total of the entries booked for the API key
// named name (Entry.APIKey): what an app holding it has spent.
func (l *File) APIKey(name string) Account { return l.get(l.apiKeys, name) }

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
