package payments

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/xssnick/tonutils-go/address"

	"github.com/cocoon-go/cocoon/contracts"
)

// mustAddress is ch's address.
func mustAddress(ch contracts.ChannelConfig) *address.Address {
	addr, err := ch.Address()
	if err != nil {
		panic(err)
	}
	return addr
}

// vouchers signs n vouchers of channel ch, paying 10 more each.
func vouchers(ch contracts.ChannelConfig, n int) []contracts.SignedVoucher {
	id, _ := ch.ID()
	var out []contracts.SignedVoucher
	for i := range n {
		out = append(out, contracts.Voucher{ChannelID: id, Seqno: uint64(i + 1), Total: 10 * uint64(i+1)}.Sign(testKey("payer voucher")))
	}
	return out
}

// A payee that dies loses only the vouchers it accepted since its last flush, keeps the one before,
// and is made whole by the payer's next (cumulative) voucher.
func TestPayeeCrashLosesOnlyUnflushed(t *testing.T) {
	ch := offChain(0)
	dir := t.TempDir()
	q := openPayee(t, dir, ch)
	q.every = time.Hour // no background flush in this test
	q.SetDeposit(1000)
	vs := vouchers(ch, 10)
	for i, v := range vs {
		if err := q.Accept(v); err != nil {
			t.Fatal(err)
		}
		if i == 4 {
			if err := q.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	kill(&q.end)
	q = openPayee(t, dir, ch)
	if newest, _ := q.Newest(); newest != vs[4] || q.Total() != 50 || q.Deposit() != 1000 {
		t.Fatalf("reopened with %+v, deposit %d; want seqno 5, total 50, deposit 1000", newest.Voucher, q.Deposit())
	}
	if err := q.Accept(vs[9]); err != nil { // the payer's newest, re-sent or overtaken by the next
		t.Fatal(err)
	}
	if err := q.Accept(vs[7]); !errors.Is(err, ErrStale) || errors.As(err, new(*StaleVoucherError)) {
		t.Fatalf("an older voucher that crossed the newest: %v, want a plain ErrStale", err)
	}
	if newest, _ := q.Newest(); newest != vs[9] {
		t.Fatalf("holds %+v after the payer's newest", newest.Voucher)
	}
}

// No voucher is written when it is signed or accepted; within FlushInterval one record of the newest
// is, however many came.
func TestOneFlushPerInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ch := offChain(0)
		pdir, qdir := t.TempDir(), t.TempDir()
		p, q := openPayer(t, pdir, ch), openPayee(t, qdir, ch)
		p.SetDeposit(1 << 20)
		q.SetDeposit(1 << 20)
		var v contracts.SignedVoucher
		for range 100 {
			v, _ = p.Pay(7)
			if err := q.Accept(v); err != nil {
				t.Fatal(err)
			}
		}
		size := func(e *end) int64 {
			fi, err := e.store.journal.Stat()
			if err != nil {
				t.Fatal(err)
			}
			return fi.Size()
		}
		time.Sleep(FlushInterval - time.Nanosecond)
		synctest.Wait()
		if size(&p.end) != 0 || size(&q.end) != 0 {
			t.Fatalf("journals of %d and %d bytes before the interval", size(&p.end), size(&q.end))
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if size(&p.end) != recordSize || size(&q.end) != recordSize {
			t.Fatalf("journals of %d and %d bytes after the interval; want one record each", size(&p.end), size(&q.end))
		}
		kill(&p.end)
		kill(&q.end)
		p, q = openPayer(t, pdir, ch), openPayee(t, qdir, ch)
		if newest, _ := q.Newest(); newest != v || p.Total() != v.Total {
			t.Fatalf("after the flush and a crash: payee at %+v, payer at total %d; want %+v", newest.Voucher, p.Total(), v.Voucher)
		}
	})
}

// A journal's torn tail is dropped; any other damage is ErrCorrupt, and nothing is rewritten.
func TestJournalDamage(t *testing.T) {
	ch := offChain(0)
	vs := vouchers(ch, 3)
	// journaled is a payee's directory whose journal holds vs, and the journal's path.
	journaled := func(t *testing.T) (dir, path string) {
		dir = t.TempDir()
		q := openPayee(t, dir, ch)
		q.every = time.Hour
		q.SetDeposit(1000)
		for _, v := range vs {
			q.Accept(v)
			if err := q.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		path = q.store.journalPath()
		kill(&q.end)
		return dir, path
	}
	other := journalSeed(rolePayer, rawAddress(mustAddress(ch)))
	for name, c := range map[string]struct {
		damage func(b []byte) []byte
		want   contracts.SignedVoucher // the newest kept; zero: ErrCorrupt
	}{
		"whole":                 {func(b []byte) []byte { return b }, vs[2]},
		"torn tail":             {func(b []byte) []byte { return b[:len(b)-recordSize/3] }, vs[1]},
		"last record damaged":   {func(b []byte) []byte { c := bytes.Clone(b); c[len(c)-10] ^= 1; return c }, vs[1]},
		"middle record damaged": {func(b []byte) []byte { c := bytes.Clone(b); c[recordSize+3] ^= 1; return c }, contracts.SignedVoucher{}},
		"out of order": {func(b []byte) []byte {
			return append(append(bytes.Clone(b[recordSize:2*recordSize]), b[:recordSize]...), b[2*recordSize:]...)
		}, contracts.SignedVoucher{}},
		"the payer's journal": {func(b []byte) []byte {
			var out []byte
			for _, v := range vs {
				out = appendRecord(out, other, record{Seqno: v.Seqno, Total: v.Total})
			}
			return out
		}, contracts.SignedVoucher{}},
		"a voucher not the payer's": {func(b []byte) []byte {
			q := recordOf(&state{Seqno: 4, Total: 99, Signature: vs[2].Signature[:]})
			return appendRecord(bytes.Clone(b), journalSeed(rolePayee, rawAddress(mustAddress(ch))), q)
		}, contracts.SignedVoucher{}},
	} {
		t.Run(name, func(t *testing.T) {
			dir, path := journaled(t)
			b, _ := os.ReadFile(path)
			bad := c.damage(b)
			os.WriteFile(path, bad, 0o600)
			q, err := OpenPayee(dir, ch)
			if c.want == (contracts.SignedVoucher{}) {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("open: %v, want ErrCorrupt", err)
				}
				if after, _ := os.ReadFile(path); !bytes.Equal(after, bad) {
					t.Fatal("a refused journal was rewritten")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			if newest, _ := q.Newest(); newest != c.want {
				t.Fatalf("holds seqno %d, want %d", newest.Seqno, c.want.Seqno)
			}
			if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
				t.Fatalf("the journal is not folded into the state file on open: %v, %v", fi, err)
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(path), "payee.json")); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// FuzzJournal: whatever bytes a journal holds, reading it does not panic, and what it accepts is a
// record it holds.
func FuzzJournal(f *testing.F) {
	seed := journalSeed(rolePayee, "0:"+string(bytes.Repeat([]byte("ab"), 32)))
	var good []byte
	for i := range uint64(3) {
		good = appendRecord(good, seed, record{Seqno: i + 1, Total: 10 * i})
	}
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		newest, n, ok, err := parseJournal(b, seed)
		if err != nil || !ok {
			return
		}
		if n < 1 || n*recordSize > len(b) {
			t.Fatalf("%d records in %d bytes", n, len(b))
		}
		if r, good := parseRecord(b[(n-1)*recordSize:n*recordSize], seed); !good || r != newest {
			t.Fatalf("newest %+v is not record %d", newest, n)
		}
	})
}

// A payer that lost vouchers in a crash first posts its newest, is answered 409 with the payee's
// newest, catches up, and only then pays what came meanwhile, on top: the payee is paid everything,
// once — even a cost that alone would have lifted the payer's total above the payee's, which the
// payee could not have told from an honest voucher.
func TestStreamCatchesUpAfterACrash(t *testing.T) {
	w := newWorld(t)
	p, q := w.open(1 * ton)
	p.every = time.Hour // nothing reaches the payer's journal
	c, err := NewCollector(CollectorConfig{Wallet: NewWallet(w.payeeW), Log: quiet, ClaimThreshold: 1 * ton})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Add(q); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	var down atomic.Bool
	post := PostTo(http.DefaultTransport, srv.URL)
	cfg := StreamConfig{Log: quiet, Retry: time.Hour, Post: func(ctx context.Context, v VoucherPost) error {
		if down.Load() {
			return errors.New("payee unreachable")
		}
		return post(ctx, v)
	}}
	s := NewStream(p, cfg)
	s.Add(100)
	s.Add(50)
	if err := s.Close(); err != nil || q.Total() != 150 {
		t.Fatalf("before the crash: %v; payee holds %d", err, q.Total())
	}
	kill(&p.end)
	p = w.payer()
	if p.Total() != 0 {
		t.Fatalf("the payer's total on disk is %d, want 0", p.Total())
	}
	down.Store(true)
	s = NewStream(p, cfg)
	s.Add(200) // more than the payee holds: a voucher of 200 would look honest to it
	if err := s.Flush(); !errors.Is(err, ErrOwed) {
		t.Fatalf("flush with the payee unreachable: %v", err)
	}
	down.Store(false)
	s.Resend()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if q.Total() != 350 || p.Total() != 350 {
		t.Fatalf("the payer's total is %d, the payee holds %d; want 350 both", p.Total(), q.Total())
	}
}

// A payer that lost vouchers the chain has paid catches up with the claim when it reads the channel,
// instead of refusing as if its state were an old copy.
func TestPayerCatchesUpWithAClaim(t *testing.T) {
	w := newWorld(t)
	p, q := w.open(1 * ton)
	p.every = time.Hour
	v, _ := p.Pay(300_000_000)
	if err := q.Accept(v); err != nil {
		t.Fatal(err)
	}
	if err := q.Claim(w.ctx, w.payeeW); err != nil {
		t.Fatal(err)
	}
	kill(&p.end)
	p = w.payer()
	if _, err := p.Refresh(w.ctx, w.c); err != nil {
		t.Fatalf("refresh after losing a claimed voucher: %v", err)
	}
	if p.Total() != 300_000_000 {
		t.Fatalf("total %d after the refresh, want the claimed 300000000", p.Total())
	}
	if _, err := p.Pay(1); !errors.Is(err, ErrNotCaughtUp) {
		t.Fatalf("pay before hearing from the payee, which may hold more than it claimed: %v", err)
	}
	held, _ := q.Newest()
	if _, ok, err := p.CatchUp(held); ok || err != nil {
		t.Fatalf("catching up with what the chain already paid: %v, %v", ok, err)
	}
	v, err := p.Pay(1_000_000)
	if err != nil || v.Total != 301_000_000 {
		t.Fatalf("pay: %+v, %v", v.Voucher, err)
	}
	if err := q.Accept(v); err != nil {
		t.Fatal(err)
	}
	if err := q.Claim(w.ctx, w.payeeW); err != nil || w.state().Claimed != 301_000_000 {
		t.Fatalf("claim: %v; chain claimed %d", err, w.state().Claimed)
	}
	w.conserved()
}

// A journal that has grown to maxRecords is folded into the state file by the next flush, and what
// it held survives a crash right after.
func TestJournalFolds(t *testing.T) {
	ch := offChain(0)
	dir := t.TempDir()
	q := openPayee(t, dir, ch)
	q.every = time.Hour
	q.SetDeposit(1000)
	vs := vouchers(ch, 2)
	q.Accept(vs[0])
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	q.store.records = maxRecords // as if it had been flushing for a while
	q.Accept(vs[1])
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	if fi, err := q.store.journal.Stat(); err != nil || fi.Size() != 0 || q.store.records != 0 {
		t.Fatalf("journal after the fold: %v, %v, %d records", fi.Size(), err, q.store.records)
	}
	kill(&q.end)
	q = openPayee(t, dir, ch)
	if newest, _ := q.Newest(); newest != vs[1] {
		t.Fatalf("reopened with seqno %d, want 2", newest.Seqno)
	}
}

// A flush that failed half-way stops the end from keeping more vouchers; the next flush that works
// folds the journal away rather than append behind the partial record, and the end goes on.
func TestFailedFlushStopsAndRecovers(t *testing.T) {
	ch := offChain(0)
	dir := t.TempDir()
	q := openPayee(t, dir, ch)
	q.every = time.Hour
	q.SetDeposit(1000)
	vs := vouchers(ch, 3)
	q.Accept(vs[0])
	q.store.crashed = func(at string) bool { return at == "record torn" }
	if err := q.Sync(); !errors.Is(err, errSimulatedCrash) {
		t.Fatalf("torn flush: %v", err)
	}
	if err := q.Accept(vs[1]); !errors.Is(err, errSimulatedCrash) {
		t.Fatalf("accept after a failed flush: %v, want the flush's error", err)
	}
	q.store.crashed = func(string) bool { return false }
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := q.Accept(vs[1]); err != nil {
		t.Fatal(err)
	}
	if err := q.Sync(); err != nil {
		t.Fatal(err)
	}
	kill(&q.end)
	q = openPayee(t, dir, ch) // ErrCorrupt if the record had landed behind the torn one
	if newest, _ := q.Newest(); newest != vs[1] {
		t.Fatalf("reopened with seqno %d, want 2", newest.Seqno)
	}
}
