package payments

import (
	"crypto/ed25519"
	"sync"
	"testing"

	"github.com/cocoon-go/cocoon/contracts"
	"github.com/xssnick/tonutils-go/address"
)

func TestStreamCoalescesAndAddsUp(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	a := address.NewAddress(0, 0, make([]byte, 32))
	b := address.NewAddress(0, 0, append(make([]byte, 31), 1))
	ch := contracts.ChannelConfig{Payer: a, Payee: b, PayerKey: key.Public().(ed25519.PublicKey), PayeeKey: key.Public().(ed25519.PublicKey), Nonce: 1, CloseDelay: 3600e9}
	payer, err := OpenPayer(t.TempDir(), ch, key)
	if err != nil {
		t.Fatal(err)
	}
	defer payer.Close()
	if err := payer.SetDeposit(1 << 40); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var vouchers []contracts.SignedVoucher
	s := NewStream(payer, func(v contracts.SignedVoucher) {
		mu.Lock()
		vouchers = append(vouchers, v)
		mu.Unlock()
	}, func(uint64, error) { t.Error("payment failed") })
	var wg sync.WaitGroup
	const n = 200
	for i := range n {
		wg.Go(func() { s.Add(uint64(i + 1)) })
	}
	wg.Wait()
	s.Flush()
	want := uint64(n * (n + 1) / 2)
	if payer.Total() != want {
		t.Fatalf("voucher total %d, want %d", payer.Total(), want)
	}
	last := vouchers[len(vouchers)-1]
	if last.Total != want || len(vouchers) > n {
		t.Errorf("%d vouchers, last total %d", len(vouchers), last.Total)
	}
	for i := 1; i < len(vouchers); i++ {
		if vouchers[i].Seqno <= vouchers[i-1].Seqno || vouchers[i].Total <= vouchers[i-1].Total {
			t.Fatalf("vouchers out of order at %d", i)
		}
	}
	t.Logf("%d amounts paid by %d vouchers", n, len(vouchers))
}
