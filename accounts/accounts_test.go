package accounts

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cocoon-go/cocoon/price"
)

func entry(id string, cost uint64) Entry {
	return Entry{RequestID: id, Client: "c", Worker: "w", Usage: price.Usage{PromptTokens: 3, CompletionTokens: 4}, Cost: cost, WorkerPay: cost * 9 / 10}
}

func TestFileBooksPersistsAndDeduplicates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	l, err := OpenFile(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []Entry{entry("a", 100), entry("b", 50), entry("a", 100)} {
		if err := l.Record(e); err != nil {
			t.Fatal(err)
		}
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
	l, err = OpenFile(path, 0)
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

func TestFileCreditLimit(t *testing.T) {
	l, err := OpenFile(filepath.Join(t.TempDir(), "l.jsonl"), 120)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Admit("c"); err != nil {
		t.Fatalf("new client refused: %v", err)
	}
	l.Record(entry("a", 100))
	if err := l.Admit("c"); err != nil {
		t.Fatalf("client under limit refused: %v", err)
	}
	l.Record(entry("b", 20))
	if err := l.Admit("c"); !errors.Is(err, ErrCreditLimit) {
		t.Fatalf("client at limit: err = %v, want ErrCreditLimit", err)
	}
	if err := l.Admit("other"); err != nil {
		t.Fatalf("other client refused: %v", err)
	}
}
