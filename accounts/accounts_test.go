package accounts

import (
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
	l, err := OpenFile(path)
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
