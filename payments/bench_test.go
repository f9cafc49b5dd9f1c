package payments

import (
	"testing"

	"github.com/cocoon-go/cocoon/contracts"
)

// BenchmarkPayAccept is the cost of the money of one answer at one channel: the payer signs a
// voucher and the payee checks and keeps it, each end with its state on disk. ns/op is wall time;
// cpu-ns/op is the process's CPU time (user and system, every goroutine) per voucher.
func BenchmarkPayAccept(b *testing.B) {
	ch := offChain(0)
	p, err := OpenPayer(b.TempDir(), ch, testKey("payer voucher"))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	q, err := OpenPayee(b.TempDir(), ch)
	if err != nil {
		b.Fatal(err)
	}
	defer q.Close()
	p.SetDeposit(1 << 62)
	q.SetDeposit(1 << 62)
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		v, err := p.Pay(1000)
		if err != nil {
			b.Fatal(err)
		}
		if err := q.Accept(v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}

// BenchmarkVoucherSignVerify is the floor under BenchmarkPayAccept: signing one voucher and checking
// its signature, nothing kept.
func BenchmarkVoucherSignVerify(b *testing.B) {
	ch := offChain(0)
	id, _ := ch.ID()
	key := testKey("payer voucher")
	b.ReportAllocs()
	cpu := cpuTime()
	for i := uint64(1); b.Loop(); i++ {
		if !(contracts.Voucher{ChannelID: id, Seqno: i, Total: 1000 * i}).Sign(key).Verify(ch.PayerKey) {
			b.Fatal("voucher does not verify")
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
}
