package accounts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/price"
)

func entry(id string, cost uint64) Entry {
	return Entry{RequestID: id, Client: "c", Worker: "w", Usage: price.Usage{PromptTokens: 3, CompletionTokens: 4}, Cost: cost, WorkerPay: cost * 9 / 10}
}

func TestFileBooksPersistsAndDeduplicates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Entry{entry("a", 100), entry("b", 50)} {
		if err := l.Record(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Record(entry("a", 100)); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("booking request a twice: %v, want ErrDuplicate", err)
	}
	want := Account{Requests: 2, Tokens: 14, Amount: 150}
	if got := l.Client("c"); got != want {
		t.Errorf("client = %+v, want %+v", got, want)
	}
	if got := l.Worker("w").Amount; got != 90+45 {
		t.Errorf("worker earned %d, want 135", got)
	}
	l.Close()

	// A torn last line, as a crash mid-write leaves it, is dropped on reopen.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"request_id":"c","cost":`)
	f.Close()
	l, err = OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.Client("c"); got != want {
		t.Errorf("after reopen client = %+v, want %+v", got, want)
	}
	if err := l.Record(entry("c", 1)); err != nil {
		t.Fatal(err)
	}
	if got := l.Client("c").Amount; got != 151 {
		t.Errorf("after torn line and new record: %d, want 151", got)
	}
}

// A request id is the client's choice: reusing one is refused until the
// request expires, whether the first is in flight or booked, and across a
// restart; another client may use the same id.
func TestAdmitRefusesReusedRequestID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Now().Add(5 * time.Minute).Unix()
	tk, err := l.Admit("c", "id1", exp, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Admit("c", "id1", exp+60, 10, nil); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("same id in flight, another expiry: %v, want ErrDuplicate", err)
	}
	if _, err := l.Admit("other", "id1", exp, 10, nil); err != nil {
		t.Fatalf("another client's id: %v", err)
	}
	if err := tk.Book(Entry{RequestID: "id1", Client: "c", Cost: 7}); err != nil {
		t.Fatal(err)
	}
	if err := tk.Book(Entry{RequestID: "id1", Client: "c", Cost: 7}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("booking a ticket twice: %v", err)
	}
	if _, err := l.Admit("c", "id1", exp, 10, nil); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("same id once booked: %v, want ErrDuplicate", err)
	}
	l.Close()
	l, err = OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Admit("c", "id1", exp, 10, nil); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("same id after a restart: %v, want ErrDuplicate", err)
	}
	if got := l.Client("c").Amount; got != 7 {
		t.Errorf("booked %d, want 7", got)
	}
}

// Expired ids are forgotten, so the ledger's memory is bounded by the
// requests of the last minutes, not by its history.
func TestAdmitForgetsExpiredIDs(t *testing.T) {
	l, err := OpenFile(filepath.Join(t.TempDir(), "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	now := time.Unix(1_000_000, 0)
	l.now = func() time.Time { return now }
	for i := range 1000 {
		tk, err := l.Admit("c", fmt.Sprint(i), now.Unix()+30, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		tk.Book(Entry{RequestID: fmt.Sprint(i), Client: "c", Cost: 1})
	}
	now = now.Add(2 * time.Minute)
	if _, err := l.Admit("c", "new", now.Unix()+30, 0, nil); err != nil {
		t.Fatal(err)
	}
	if n := len(l.used) + len(l.booked); n != 1 {
		t.Errorf("remembering %d ids after they expired, want 1", n)
	}
	if got := l.Client("c"); got.Requests != 1000 || got.Amount != 1000 {
		t.Errorf("totals %+v, want 1000 requests", got)
	}
}

// Many requests admitted at once cannot together pass the credit: what
// each may cost is held until it is booked or released.
func TestAdmitHoldsCreditAgainstConcurrentRequests(t *testing.T) {
	l, err := OpenFile(filepath.Join(t.TempDir(), "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	exp := time.Now().Add(time.Minute).Unix()
	credit := &Credit{Allowance: 1000}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var admitted []*Ticket
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tk, err := l.Admit("c", fmt.Sprint(i), exp, 100, credit); err == nil {
				mu.Lock()
				admitted = append(admitted, tk)
				mu.Unlock()
			} else if !errors.Is(err, ErrCreditLimit) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(admitted) != 10 {
		t.Fatalf("admitted %d requests that may cost 100 each against 1000 of credit, want 10", len(admitted))
	}
	// Booking turns the hold into what is owed: 10 × 60 unpaid leaves room for 4 more.
	for _, tk := range admitted {
		if err := tk.Book(Entry{RequestID: tk.key.id, Client: "c", Cost: 60}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for i := range 10 {
		if _, err := l.Admit("c", fmt.Sprint("more", i), exp, 100, credit); err == nil {
			n++
		}
	}
	if n != 4 {
		t.Errorf("after booking 600 unpaid, admitted %d more, want 4", n)
	}
	// Vouchers paying what is owed free the credit again.
	if _, err := l.Admit("c", "paid", exp, 100, &Credit{Allowance: 1000, Paid: 600}); err != nil {
		t.Errorf("after the client paid: %v", err)
	}
}
