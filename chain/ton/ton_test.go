package ton

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"testing"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tl"
	"github.com/xssnick/tonutils-go/tlb"
	tonapi "github.com/xssnick/tonutils-go/ton"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-go/cocoon/chain"
)

// testdata/mainnet.json holds real mainnet data from tonutils-go v1.18.0's tvm/testdata: three consecutive
// transactions of one account, two other transactions, and a stack value the reference emulator produced.
type mainnetData struct {
	Address      string   `json:"address"`
	Transactions []string `json:"transactions"` // oldest first
	Stack        string   `json:"stack"`
	Other        []struct {
		Address     string `json:"address"`
		Transaction string `json:"transaction"`
	} `json:"other"`
}

func loadMainnet(t *testing.T) (mainnetData, []*cell.Cell) {
	t.Helper()
	b, err := os.ReadFile("testdata/mainnet.json")
	if err != nil {
		t.Fatal(err)
	}
	var d mainnetData
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var cells []*cell.Cell
	for _, s := range d.Transactions {
		cells = append(cells, mustCell(t, s))
	}
	return d, cells
}

func mustCell(t *testing.T, b64 string) *cell.Cell {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	c, err := cell.FromBOC(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fakeLiteserver answers GetTransactions from a list of an account's transactions, two at a time.
type fakeLiteserver struct {
	txs     []*cell.Cell // oldest first
	queries int
}

func (f *fakeLiteserver) QueryLiteserver(_ context.Context, payload tl.Serializable, result tl.Serializable) error {
	f.queries++
	req, ok := payload.(tonapi.GetTransactions)
	if !ok {
		*result.(*tl.Serializable) = tonapi.LSError{Code: 400, Text: "unsupported"}
		return nil
	}
	for i := len(f.txs) - 1; i >= 0; i-- {
		if string(f.txs[i].Hash()) != string(req.TxHash) {
			continue
		}
		var page []*cell.Cell
		for j := i; j >= 0 && len(page) < 2; j-- {
			page = append(page, f.txs[j])
		}
		*result.(*tl.Serializable) = tonapi.TransactionList{Transactions: cell.ToBOCWithFlags(page, false)}
		return nil
	}
	*result.(*tl.Serializable) = tonapi.LSError{Code: 0, Text: "not found"}
	return nil
}

func (f *fakeLiteserver) StickyContext(ctx context.Context) context.Context { return ctx }
func (f *fakeLiteserver) StickyContextNextNode(ctx context.Context) (context.Context, error) {
	return ctx, nil
}
func (f *fakeLiteserver) StickyContextNextNodeBalanced(ctx context.Context) (context.Context, error) {
	return ctx, nil
}
func (f *fakeLiteserver) StickyNodeID(context.Context) uint32 { return 0 }

func TestWalkRealHistory(t *testing.T) {
	d, cells := loadMainnet(t)
	addr := address.MustParseRawAddr(d.Address)
	ls := &fakeLiteserver{txs: cells}
	c := &Chain{api: tonapi.NewAPIClient(ls)}
	newest := cells[len(cells)-1]
	newestTx, err := chain.ParseTransaction(0, newest)
	if err != nil {
		t.Fatal(err)
	}

	var lts []uint64
	err = c.walk(context.Background(), addr, newestTx.LT, newest.Hash(), func(tx *chain.Transaction) bool {
		if !tx.Address.Equals(addr) {
			t.Errorf("transaction of %s", tx.Address)
		}
		lts = append(lts, tx.LT)
		return len(lts) < 3
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []uint64{76957959000001, 76957958000001, 76957957000005}
	if len(lts) != 3 || lts[0] != want[0] || lts[1] != want[1] || lts[2] != want[2] {
		t.Fatalf("walked %v, want %v", lts, want)
	}
	if ls.queries != 2 {
		t.Fatalf("%d queries for 3 transactions two at a time", ls.queries)
	}

	// A liteserver that answers with a transaction other than the one asked for is caught.
	bad := &fakeLiteserver{txs: []*cell.Cell{cells[0], cells[2]}}
	c = &Chain{api: tonapi.NewAPIClient(bad)}
	err = c.walk(context.Background(), addr, newestTx.LT, newest.Hash(), func(*chain.Transaction) bool { return true })
	if err == nil {
		t.Fatal("a broken chain of transactions was accepted")
	}
}

func TestParseRealTransactions(t *testing.T) {
	d, cells := loadMainnet(t)
	for i, c := range cells {
		tx, err := chain.ParseTransaction(0, c)
		if err != nil {
			t.Fatal(err)
		}
		if tx.Address.StringRaw() != d.Address || tx.In == nil || tx.Cell != c {
			t.Fatalf("transaction %d: %+v", i, tx)
		}
		if i > 0 {
			prev, _ := chain.ParseTransaction(0, cells[i-1])
			if tx.PrevLT != prev.LT || string(tx.PrevHash) != string(prev.Hash) {
				t.Fatalf("transaction %d does not follow %d", i, i-1)
			}
		}
	}
	for _, o := range d.Other {
		wc := int32(0)
		tx, err := chain.ParseTransaction(wc, mustCell(t, o.Transaction))
		if err != nil {
			t.Fatal(err)
		}
		if tx.Address.StringRaw() != o.Address {
			t.Fatalf("address %s, want %s", tx.Address.StringRaw(), o.Address)
		}
		for _, m := range tx.Out {
			if m.Type == tlb.MsgTypeInternal && !m.Src.Equals(tx.Address) {
				t.Fatalf("outbound message from %s", m.Src)
			}
		}
	}
}

// A stack value as TON's C++ emulator serializes it (mainnet's unpacked config tuple), in a one-value
// VmStack: the encoding of a liteserver's get-method results.
func TestParseRealStack(t *testing.T) {
	d, _ := loadMainnet(t)
	value := mustCell(t, d.Stack)
	stack := cell.BeginCell().MustStoreUInt(1, 24).MustStoreRef(cell.BeginCell().EndCell()).MustStoreBuilder(value.ToBuilder()).EndCell()
	vals, err := chain.UnmarshalStack(stack)
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != 1 {
		t.Fatalf("%d values", len(vals))
	}
	tup, ok := vals[0].([]any)
	if !ok || len(tup) < 2 {
		t.Fatalf("unpacked config is %T %v", vals[0], vals[0])
	}
	// Element 1 is config parameter 19 as a slice: mainnet's global id, -239.
	s, ok := tup[1].(*cell.Slice)
	if !ok {
		t.Fatalf("global id is %T", tup[1])
	}
	if id, err := s.LoadInt(32); err != nil || id != -239 {
		t.Fatalf("global id %v, %v", id, err)
	}
}

func TestErrors(t *testing.T) {
	addr := address.NewAddress(0, 0, make([]byte, 32))
	if err := getMethodError(addr, "seqno", tonapi.ContractExecError{Code: tonapi.ErrCodeContractNotInitialized}); !errors.Is(err, chain.ErrNotActive) {
		t.Errorf("not initialized: %v", err)
	}
	var exit *chain.ExitError
	if err := getMethodError(addr, "seqno", tonapi.ContractExecError{Code: 11}); !errors.As(err, &exit) || exit.Code != 11 || exit.Method != "seqno" {
		t.Errorf("exit code 11: %v", err)
	}
	if err := sendResult(tonapi.LSError{Code: 500, Text: "cannot apply external message"}); !errors.Is(err, chain.ErrRejected) {
		t.Errorf("refused message: %v", err)
	}
	if err := sendResult(tonapi.SendMessageStatus{Status: 1}); err != nil {
		t.Errorf("accepted message: %v", err)
	}
}

func TestNames(t *testing.T) {
	for id, want := range map[int32]string{-239: "ton:mainnet", -3: "ton:testnet", 42: "ton:42"} {
		if got := networkName(id); got != want {
			t.Errorf("networkName(%d) = %q, want %q", id, got, want)
		}
	}
	if configSource("testnet") != TestnetConfigURL || configSource("mainnet") != MainnetConfigURL || configSource("/etc/ton.json") != "/etc/ton.json" {
		t.Error("config sources")
	}
}

func TestAccount(t *testing.T) {
	addr := address.NewAddress(0, 0, make([]byte, 32))
	a, err := account(addr, &tlb.Account{IsActive: false})
	if err != nil || a.Status != tlb.AccountStatusNonExist || a.Balance != 0 {
		t.Fatalf("no account: %+v, %v", a, err)
	}
	code := cell.BeginCell().MustStoreUInt(1, 8).EndCell()
	st := &tlb.AccountState{IsValid: true, AccountStorage: tlb.AccountStorage{Status: tlb.AccountStatusActive, Balance: tlb.FromNanoTON(big.NewInt(123))}}
	a, err = account(addr, &tlb.Account{IsActive: true, State: st, Code: code, LastTxLT: 9, LastTxHash: []byte{1}})
	if err != nil || !a.Active() || a.Balance != 123 || a.Code != code || a.LastLT != 9 {
		t.Fatalf("active account: %+v, %v", a, err)
	}
}

var _ chain.Chain = (*Chain)(nil)
