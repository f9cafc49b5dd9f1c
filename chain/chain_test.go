package chain_test

import (
	"crypto/ed25519"
	"crypto/sha256"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/ton/wallet"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-go/cocoon/chain"
)

func TestStackRoundTrip(t *testing.T) {
	c := cell.BeginCell().MustStoreUInt(0xabcd, 16).EndCell()
	addr := address.NewAddress(0, 0, make([]byte, 32))
	in := []any{big.NewInt(-7), 42, uint64(1 << 63), c, c.MustBeginParse(), nil, []any{big.NewInt(1), []any{c}}, addr, tlb.StackNaN{}}
	sc, err := chain.MarshalStack(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := chain.UnmarshalStack(sc)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("%d values back, want %d", len(out), len(in))
	}
	for i, want := range []int64{-7, 42} {
		if out[i].(*big.Int).Int64() != want {
			t.Errorf("value %d = %v, want %d", i, out[i], want)
		}
	}
	if out[2].(*big.Int).Cmp(new(big.Int).SetUint64(1<<63)) != 0 {
		t.Errorf("uint64 came back as %v", out[2])
	}
	if string(out[3].(*cell.Cell).Hash()) != string(c.Hash()) {
		t.Error("cell changed")
	}
	if out[5] != nil {
		t.Errorf("nil came back as %v", out[5])
	}
	tup := out[6].([]any)
	if len(tup) != 2 || tup[0].(*big.Int).Int64() != 1 || len(tup[1].([]any)) != 1 {
		t.Errorf("tuple came back as %v", tup)
	}
	got, err := out[7].(*cell.Slice).LoadAddr()
	if err != nil || !got.Equals(addr) {
		t.Errorf("address came back as %v, %v", got, err)
	}
	if _, ok := out[8].(tlb.StackNaN); !ok {
		t.Errorf("NaN came back as %T", out[8])
	}
}

// A BoC shares cells: a chain of 2-tuples whose elements are both the next tuple is a few hundred bytes
// and 2^40 values. UnmarshalStack must refuse it at once.
func TestStackUnfoldBound(t *testing.T) {
	v := cell.BeginCell().MustStoreUInt(0, 8).EndCell() // null
	for range 40 {
		v = cell.BeginCell().MustStoreUInt(7, 8).MustStoreUInt(2, 16).MustStoreRef(v).MustStoreRef(v).EndCell()
	}
	stack := cell.BeginCell().MustStoreUInt(1, 24).MustStoreRef(cell.BeginCell().EndCell()).MustStoreBuilder(v.ToBuilder()).EndCell()
	start := time.Now()
	if _, err := chain.UnmarshalStack(stack); err == nil || !strings.Contains(err.Error(), "unfolds") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
}

// mainnet is a Chain that only knows its global id, for building messages offline.
type mainnet struct{ chain.Chain }

func (mainnet) GlobalID() int32 { return -239 }

func TestWalletMessage(t *testing.T) {
	seed := sha256.Sum256([]byte("offline"))
	key := ed25519.NewKeyFromSeed(seed[:])
	w, err := chain.NewWallet(mainnet{}, key)
	if err != nil {
		t.Fatal(err)
	}
	// The same address tonutils-go gives a V5R1 wallet on mainnet.
	want, err := wallet.AddressFromPubKey(key.Public().(ed25519.PublicKey), wallet.ConfigV5R1Final{NetworkGlobalID: -239}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Address().Equals(want) {
		t.Fatalf("address %s, tonutils-go says %s", w.Address(), want)
	}

	to := address.NewAddress(0, 0, make([]byte, 32))
	until := time.Unix(1_800_000_000, 0)
	msg, err := w.Message([]chain.Transfer{{To: to, Amount: 5, Bounce: true}}, 7, until, true)
	if err != nil {
		t.Fatal(err)
	}
	m, err := chain.ParseMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != tlb.MsgTypeExternalIn || !m.Dst.Equals(w.Address()) || m.StateInit == nil {
		t.Fatalf("message %+v", m)
	}
	body := m.Body.MustBeginParse()
	op, _ := body.LoadUInt(32)
	id, _ := body.LoadUInt(32)
	vu, _ := body.LoadUInt(32)
	seqno, _ := body.LoadUInt(32)
	if op != 0x7369676e || uint32(id) != (wallet.V5R1ID{NetworkGlobalID: -239}).Serialized() || vu != uint64(until.Unix()) || seqno != 7 {
		t.Fatalf("op %x id %x valid until %d seqno %d", op, id, vu, seqno)
	}
	// The signature (last 512 bits) covers everything before it.
	bits := m.Body.BitsSize() - 512
	signed := m.Body.MustBeginParse().MustLoadSlice(bits)
	payload := cell.BeginCell().MustStoreSlice(signed, bits)
	for i := range int(m.Body.RefsNum()) {
		payload.MustStoreRef(m.Body.MustPeekRef(i))
	}
	sigSlice := m.Body.MustBeginParse()
	sigSlice.MustLoadSlice(bits)
	sig := sigSlice.MustLoadSlice(512)
	if !ed25519.Verify(key.Public().(ed25519.PublicKey), payload.EndCell().Hash(), sig) {
		t.Fatal("signature does not verify")
	}
}

func TestWalletTooManyTransfers(t *testing.T) {
	seed := sha256.Sum256([]byte("offline"))
	w, _ := chain.NewWallet(mainnet{}, ed25519.NewKeyFromSeed(seed[:]))
	if _, err := w.Message(make([]chain.Transfer, 256), 0, time.Now(), false); err == nil {
		t.Fatal("256 transfers accepted")
	}
}
