package contracts

import (
	"crypto/ed25519"
	"crypto/sha256"
	_ "embed"
	"math/big"
	"sync"
	"testing"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm"
	"github.com/xssnick/tonutils-go/tvm/cell"
	"github.com/xssnick/tonutils-go/tvm/tuple"
	"github.com/xssnick/tonutils-go/tvm/vm"
)

// mainnet-config.boc is the TON mainnet configuration at masterchain block 66519406, taken
// from tonutils-go's replay fixtures: real gas, storage and forwarding prices.
//
//go:embed testdata/mainnet-config.boc
var configBOC []byte

var preparedConfig = sync.OnceValues(func() (*tvm.PreparedBlockchainConfig, error) {
	root, err := cell.FromBOC(configBOC)
	if err != nil {
		return nil, err
	}
	return tvm.PrepareBlockchainConfig(root)
})

// ledger is a tiny chain around tonutils-go's TVM: one contract account at a time,
// messages from parties that are plain addresses (their balances are tracked as nets),
// a clock, and a record of every fee so that value can be accounted to the nanoTON.
type ledger struct {
	t       testing.TB
	machine *tvm.TVM
	cfg     *tvm.PreparedBlockchainConfig
	now     uint32
	lt      uint64

	accounts map[string]*tvm.PreparedAccount
	net      map[string]*big.Int // what each party has received minus what it has sent
	fees     *big.Int            // all fees: transaction fees and forwarding fees in flight
}

func newLedger(t testing.TB) *ledger {
	t.Helper()
	cfg, err := preparedConfig()
	if err != nil {
		t.Fatalf("prepare config: %v", err)
	}
	return &ledger{
		t:        t,
		machine:  tvm.NewTVM(),
		cfg:      cfg,
		now:      1_750_000_000,
		lt:       1_000_000,
		accounts: map[string]*tvm.PreparedAccount{},
		net:      map[string]*big.Int{},
		fees:     new(big.Int),
	}
}

func (l *ledger) netOf(a *address.Address) *big.Int {
	k := a.StringRaw()
	if l.net[k] == nil {
		l.net[k] = new(big.Int)
	}
	return l.net[k]
}

// party is someone outside the contracts: an address and an Ed25519 key.
type party struct {
	addr *address.Address
	key  ed25519.PrivateKey
}

func newParty(name string) party {
	seed := sha256.Sum256([]byte("cocoon contracts test " + name))
	key := ed25519.NewKeyFromSeed(seed[:])
	h := sha256.Sum256([]byte(name))
	return party{addr: address.NewAddress(0, 0, h[:]), key: key}
}

func (p party) pub() ed25519.PublicKey { return p.key.Public().(ed25519.PublicKey) }

// txResult is what one transaction did.
type txResult struct {
	exit    int64 // compute-phase exit code; -1 when the compute phase was skipped
	gas     int64
	action  int32 // action-phase result code
	aborted bool
	fees    *big.Int // transaction fees (storage, gas, actions)
	storage *big.Int // the storage part of fees
	out     []*tlb.InternalMessage
}

// outTo is the total value of out messages to a.
func (r *txResult) outTo(a *address.Address) uint64 {
	var n uint64
	for _, m := range r.out {
		if m.DstAddr.Equals(a) {
			n += m.Amount.Nano().Uint64()
		}
	}
	return n
}

func (l *ledger) balance(a *address.Address) uint64 {
	acc := l.accounts[a.StringRaw()]
	if acc == nil || acc.State() == nil || !acc.State().IsValid {
		return 0
	}
	return acc.State().Balance.Nano().Uint64()
}

func (l *ledger) data(a *address.Address) *cell.Cell {
	st := l.accounts[a.StringRaw()].State()
	return st.StateInit.Data
}

// send delivers an internal message from a party to a contract account, bounceable as a
// wallet would send it, and settles everything it sends back to parties.
func (l *ledger) send(from *address.Address, to *address.Address, value uint64, body *cell.Cell, init *tlb.StateInit) *txResult {
	l.t.Helper()
	l.lt += 10
	msg := &tlb.InternalMessage{
		IHRDisabled: true,
		Bounce:      true,
		SrcAddr:     from,
		DstAddr:     to,
		Amount:      tlb.FromNanoTONU(value),
		CreatedLT:   l.lt,
		CreatedAt:   l.now,
		StateInit:   init,
		Body:        body,
	}
	msgCell, err := tlb.ToCell(msg)
	if err != nil {
		l.t.Fatalf("build message: %v", err)
	}
	l.netOf(from).Sub(l.netOf(from), new(big.Int).SetUint64(value))
	return l.deliver(to, msgCell)
}

func (l *ledger) deliver(to *address.Address, msgCell *cell.Cell) *txResult {
	l.t.Helper()
	key := to.StringRaw()
	acc := l.accounts[key]
	if acc == nil {
		var err error
		acc, err = tvm.PrepareAccount(&tlb.ShardAccount{
			Account:       cell.BeginCell().MustStoreBoolBit(false).EndCell(),
			LastTransHash: make([]byte, 32),
		}, to)
		if err != nil {
			l.t.Fatalf("prepare empty account: %v", err)
		}
	}
	block, err := l.cfg.NewBlockContext(tvm.BlockOptions{Now: l.now, RandSeed: make([]byte, 32)})
	if err != nil {
		l.t.Fatalf("block context: %v", err)
	}
	msg, err := tvm.PrepareMessage(msgCell)
	if err != nil {
		l.t.Fatalf("prepare message: %v", err)
	}
	res, err := l.machine.EmulateTransaction(block, acc, msg, tvm.TransactionOptions{LogicalTime: int64(l.lt)})
	if err != nil {
		l.t.Fatalf("emulate transaction: %v", err)
	}
	l.accounts[key] = res.NextAccount
	l.lt = res.EndLT

	tx, err := res.ParseTransaction()
	if err != nil {
		l.t.Fatalf("parse transaction: %v", err)
	}
	desc, ok := tx.Description.(tlb.TransactionDescriptionOrdinary)
	if !ok {
		l.t.Fatalf("transaction description is %T", tx.Description)
	}
	r := &txResult{exit: -1, fees: tx.TotalFees.Coins.Nano(), storage: new(big.Int), aborted: desc.Aborted}
	if desc.StoragePhase != nil {
		r.storage = desc.StoragePhase.StorageFeesCollected.Nano()
	}
	if vmPhase, ok := desc.ComputePhase.Phase.(tlb.ComputePhaseVM); ok {
		r.exit = int64(vmPhase.Details.ExitCode)
		r.gas = vmPhase.Details.GasUsed.Int64()
	}
	if desc.ActionPhase != nil {
		r.action = desc.ActionPhase.ResultCode
	}
	l.fees.Add(l.fees, r.fees)
	for _, om := range res.OutMessages {
		im, ok := om.Msg.Msg.(*tlb.InternalMessage)
		if !ok {
			l.t.Fatalf("out message is %T", om.Msg.Msg)
		}
		r.out = append(r.out, im)
		// The forwarding fee still in the message is paid where it is delivered; count it
		// as spent, and credit the value to the party it goes to.
		l.fees.Add(l.fees, im.FwdFee.Nano())
		l.fees.Add(l.fees, im.IHRFee.Nano())
		l.netOf(im.DstAddr).Add(l.netOf(im.DstAddr), im.Amount.Nano())
	}
	return r
}

// get runs a get-method of a contract account and returns its results in return order.
func (l *ledger) get(a *address.Address, method string, args ...any) []any {
	l.t.Helper()
	vals, exit := l.tryGet(a, method, args...)
	if exit != 0 {
		l.t.Fatalf("%s: exit code %d", method, exit)
	}
	return vals
}

func (l *ledger) tryGet(a *address.Address, method string, args ...any) ([]any, int64) {
	l.t.Helper()
	st := l.accounts[a.StringRaw()].State()
	code, data := st.StateInit.Code, st.StateInit.Data
	stack := vm.NewStack()
	for _, arg := range args {
		if err := stack.PushAny(arg); err != nil {
			l.t.Fatalf("push %T: %v", arg, err)
		}
	}
	if err := stack.PushInt(big.NewInt(int64(tlb.MethodNameHash(method)))); err != nil {
		l.t.Fatal(err)
	}
	c7 := tuple.NewTupleValue(tuple.NewTupleValue(
		big.NewInt(0x076ef1ea), big.NewInt(0), big.NewInt(0),
		big.NewInt(int64(l.now)), big.NewInt(0), big.NewInt(0),
		big.NewInt(0),
		tuple.NewTupleValue(new(big.Int).SetUint64(l.balance(a)), nil),
		cell.BeginCell().MustStoreAddr(a).ToSlice(),
		l.cfg.Root(),
		code,
		tuple.NewTupleValue(big.NewInt(0), nil),
		big.NewInt(0),
		nil,
	))
	res, err := l.machine.ExecuteGetMethod(code, data, c7, vm.GasWithLimit(1_000_000), stack, tvm.ExecutionConfig{Config: l.cfg})
	if err != nil {
		l.t.Fatalf("%s: %v", method, err)
	}
	if res.ExitCode != 0 && res.ExitCode != 1 {
		return nil, res.ExitCode
	}
	n := res.Stack.Len()
	vals := make([]any, n)
	for i := range n {
		v, err := res.Stack.Get(n - 1 - i)
		if err != nil {
			l.t.Fatal(err)
		}
		vals[i] = v
	}
	return vals, 0
}
