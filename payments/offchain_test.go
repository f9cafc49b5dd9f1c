package payments

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/contracts"
)

func openPayer(t *testing.T, dir string, ch contracts.ChannelConfig) *Payer {
	t.Helper()
	p, err := OpenPayer(dir, ch, testKey("payer voucher"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func openPayee(t *testing.T, dir string, ch contracts.ChannelConfig) *Payee {
	t.Helper()
	q, err := OpenPayee(dir, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// Accept keeps only newer vouchers signed by the payer for this channel and within the deposit, and a
// refused voucher changes nothing, on disk either.
func TestAcceptRefuses(t *testing.T) {
	ch := offChain(0)
	id, _ := ch.ID()
	p := openPayer(t, t.TempDir(), ch)
	dir := t.TempDir()
	q := openPayee(t, dir, ch)
	p.SetDeposit(1000)
	q.SetDeposit(1000)
	v1, _ := p.Pay(100)
	v2, _ := p.Pay(50)
	if err := q.Accept(v1); err != nil {
		t.Fatal(err)
	}
	if err := q.Accept(v2); err != nil {
		t.Fatal(err)
	}

	other := offChain(1) // same parties and keys, another nonce: another channel
	otherID, _ := other.ID()
	key := testKey("payer voucher")
	for name, c := range map[string]struct {
		v    contracts.SignedVoucher
		want error
	}{
		"old":                     {v1, ErrStale},
		"same seqno, other total": {contracts.Voucher{ChannelID: id, Seqno: 2, Total: 151}.Sign(key), ErrStale},
		"total goes down":         {contracts.Voucher{ChannelID: id, Seqno: 3, Total: 149}.Sign(key), ErrStale},
		"forged":                  {contracts.Voucher{ChannelID: id, Seqno: 3, Total: 500}.Sign(testKey("mallory")), ErrBadSignature},
		"tampered":                {func() contracts.SignedVoucher { v := v2; v.Total = 900; v.Seqno = 9; return v }(), ErrBadSignature},
		"another channel":         {contracts.Voucher{ChannelID: otherID, Seqno: 3, Total: 500}.Sign(key), ErrWrongChannel},
		"above the deposit":       {contracts.Voucher{ChannelID: id, Seqno: 3, Total: 1001}.Sign(key), ErrInsufficientDeposit},
	} {
		if err := q.Accept(c.v); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if err := q.Accept(v2); err != nil {
		t.Fatalf("a repeat of the newest voucher: %v", err)
	}
	if newest, _ := q.Newest(); newest != v2 || q.Total() != 150 {
		t.Fatalf("newest %+v after refusals", newest)
	}
	q.Close()
	q = openPayee(t, dir, ch)
	if newest, _ := q.Newest(); newest != v2 {
		t.Fatalf("reopened with %+v", newest)
	}
	// The same seqno, higher seqnos with the same total: accepted (the contract pays nothing more).
	if err := q.Accept(contracts.Voucher{ChannelID: id, Seqno: 7, Total: 150}.Sign(key)); err != nil {
		t.Fatal(err)
	}
}

// The payer refuses to promise more than the deposit it knows, and a refusal changes nothing.
func TestPayWithinDeposit(t *testing.T) {
	p := openPayer(t, t.TempDir(), offChain(0))
	if _, err := p.Pay(1); !errors.Is(err, ErrInsufficientDeposit) {
		t.Fatalf("pay with no known deposit: %v", err)
	}
	if _, err := p.Last(); !errors.Is(err, ErrNoVoucher) {
		t.Fatalf("Last before any Pay: %v", err)
	}
	p.SetDeposit(100)
	if _, err := p.Pay(60); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Pay(41); !errors.Is(err, ErrInsufficientDeposit) {
		t.Fatalf("pay past the deposit: %v", err)
	}
	if _, err := p.Pay(^uint64(0)); !errors.Is(err, ErrInsufficientDeposit) {
		t.Fatalf("pay of 2^64-1: %v", err)
	}
	v, err := p.Pay(40)
	if err != nil || v.Seqno != 2 || v.Total != 100 {
		t.Fatalf("pay up to the deposit: %+v, %v", v, err)
	}
	if !v.Verify(offChain(0).PayerKey) {
		t.Fatal("voucher does not verify")
	}
	if _, err := OpenPayer(t.TempDir(), offChain(0), testKey("mallory")); err == nil {
		t.Fatal("a payer with a key that is not the channel's")
	}
}

// Whatever point the payer dies at — reserving seqnos, in the middle of a journal record, with
// vouchers only in memory, closing — no two vouchers with the same seqno and different totals ever
// leave it; after a restart it goes on past every seqno it used, with at least the total it last put
// on disk; and an honest payee that answers a voucher below its newest with that newest (as a
// Collector does) ends up paid exactly what the payer gave out, no more and no less.
func TestPayerCrashes(t *testing.T) {
	ch := offChain(0)
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	given := map[uint64]uint64{} // seqno → total of every voucher that left the payer
	var top uint64               // the highest seqno given
	see := func(v contracts.SignedVoucher) {
		t.Helper()
		if !v.Verify(ch.PayerKey) {
			t.Fatalf("voucher %d does not verify", v.Seqno)
		}
		if total, ok := given[v.Seqno]; ok && total != v.Total {
			t.Fatalf("two vouchers with seqno %d: totals %d and %d", v.Seqno, total, v.Total)
		}
		given[v.Seqno] = v.Total
		top = max(top, v.Seqno)
	}
	q := openPayee(t, t.TempDir(), ch)
	q.SetDeposit(1 << 40)
	var p *Payer
	// deliver posts v to the payee and catches up with the answer, as a Stream does.
	deliver := func(v contracts.SignedVoucher) {
		t.Helper()
		see(v)
		err := q.Accept(v)
		for behind := (*StaleVoucherError)(nil); errors.As(err, &behind); {
			caught, ok, cerr := p.CatchUp(behind.Newest)
			if cerr != nil || !ok {
				t.Fatalf("catching up with seqno %d, total %d from seqno %d, total %d: %v, %v",
					behind.Newest.Seqno, behind.Newest.Total, v.Seqno, v.Total, ok, cerr)
			}
			see(caught)
			err = q.Accept(caught)
		}
		if err != nil {
			t.Fatalf("accept seqno %d, total %d: %v", v.Seqno, v.Total, err)
		}
		if _, _, err := p.CatchUp(v); err != nil { // taken: the payee holds nothing newer
			t.Fatalf("catch up with the voucher the payee took: %v", err)
		}
	}
	reopen := func() {
		t.Helper()
		p = openPayer(t, dir, ch)
		p.reserve = 3       // reserve often, so that crashes hit reservations
		p.every = time.Hour // and flush only when the test says
	}
	reopen()
	p.SetDeposit(1 << 40)
	var paid, synced uint64 // what Pay gave vouchers for; the total at the last Sync
	crashes := 0
	for range 400 {
		point := ""
		at := func(at string) bool { return at == point }
		p.crashed, p.store.crashed = at, at
		switch r := rng.IntN(10); {
		case r < 6:
			point = []string{"", "", "temp written", "reserved"}[rng.IntN(4)] // fire only when Pay reserves
			amount := 1 + rng.Uint64N(1000)
			v, err := p.Pay(amount)
			if err == nil {
				paid += amount
				deliver(v)
				continue
			}
			if !errors.Is(err, errSimulatedCrash) {
				t.Fatalf("pay with a crash at %q: %v", point, err)
			}
		case r < 8:
			point = []string{"", "record torn"}[rng.IntN(2)]
			if err := p.Sync(); err == nil {
				synced = p.Total()
				continue
			} else if !errors.Is(err, errSimulatedCrash) {
				t.Fatalf("sync with a crash at %q: %v", point, err)
			}
		case r < 9:
			point = []string{"", "checkpoint written"}[rng.IntN(2)]
			seqno, total := p.Seqno(), p.Total()
			if err := p.Close(); err != nil && !errors.Is(err, errSimulatedCrash) {
				t.Fatal(err)
			}
			reopen()
			if p.Seqno() != seqno || p.Total() != total {
				t.Fatalf("closed at seqno %d, total %d; reopened at %d, %d", seqno, total, p.Seqno(), p.Total())
			}
			synced = total
			continue
		}
		crashes++
		kill(&p.end)
		reopen()
		if p.Total() < synced || p.Total() > paid {
			t.Fatalf("after a crash at %q: total %d; %d synced, %d paid", point, p.Total(), synced, paid)
		}
		if p.Seqno() < top {
			t.Fatalf("after a crash at %q: seqno %d, vouchers up to %d given", point, p.Seqno(), top)
		}
		if v, err := p.Pay(1); p.unsure != errors.Is(err, ErrNotCaughtUp) {
			// Signing more before hearing from the payee could pay less than it holds, and it
			// would not know.
			t.Fatalf("pay after a restart that must catch up (%t): %v", p.unsure, err)
		} else if err == nil {
			paid++
			deliver(v)
		}
		if last, err := p.Last(); err == nil {
			deliver(last) // a Stream posts it at once after a restart
		}
		if p.unsure {
			t.Fatal("still not caught up after the payee's answer")
		}
	}
	if q.Total() != paid || p.Total() != paid {
		t.Fatalf("paid %d; the payer's total is %d, the payee holds %d", paid, p.Total(), q.Total())
	}
	if crashes < 20 {
		t.Fatalf("the test exercised %d crashes", crashes)
	}
}

// The payer's crash between reserving seqnos and signing: it goes on past the whole reservation (never
// reusing a seqno it may have signed), at the total on disk, and catches up with what the payee holds;
// a clean close gives the unused seqnos back.
func TestPayerSkipsItsReservationAfterACrash(t *testing.T) {
	ch := offChain(0)
	dir := t.TempDir()
	p := openPayer(t, dir, ch)
	p.reserve = 10
	p.SetDeposit(1000)
	var v contracts.SignedVoucher
	for range 3 {
		v, _ = p.Pay(100)
	}
	kill(&p.end) // vouchers 1 to 3 were only in memory
	p = openPayer(t, dir, ch)
	if p.Seqno() != 11 || p.Total() != 0 {
		t.Fatalf("reopened at seqno %d, total %d; want 11 (past the reservation of 10), 0", p.Seqno(), p.Total())
	}
	if last, err := p.Last(); err != nil || last.Seqno != 11 || last.Total != 0 {
		t.Fatalf("Last after the crash: %+v, %v", last, err)
	}
	if _, _, err := p.CatchUp(contracts.Voucher{ChannelID: v.ChannelID, Seqno: 12, Total: 300}.Sign(testKey("payer voucher"))); !errors.Is(err, ErrStateBehind) {
		t.Fatalf("catching up with a seqno the payer never reached: %v", err)
	}
	caught, ok, err := p.CatchUp(v)
	if err != nil || !ok || caught.Seqno != 12 || caught.Total != 300 {
		t.Fatalf("catch up with seqno 3, total 300: %+v, %v, %v", caught, ok, err)
	}
	if _, ok, err := p.CatchUp(v); ok || err != nil {
		t.Fatalf("catching up twice: %v, %v", ok, err)
	}
	if v, err := p.Pay(50); err != nil || v.Seqno != 13 || v.Total != 350 {
		t.Fatalf("pay after catching up: %+v, %v", v, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p = openPayer(t, dir, ch)
	if p.Seqno() != 13 || p.Total() != 350 {
		t.Fatalf("reopened after a clean close at seqno %d, total %d; want 13, 350", p.Seqno(), p.Total())
	}
}

// A payer process killed (SIGKILL) while it pays as fast as it can: every voucher it printed is
// consistent with the state it left, and the next Pay goes on from there.
func TestPayerKilled(t *testing.T) {
	if os.Getenv("PAYMENTS_PAYER_CHILD") != "" {
		payerChild(os.Getenv("PAYMENTS_PAYER_CHILD"))
		return
	}
	if testing.Short() {
		t.Skip("starts a process")
	}
	ch := offChain(0)
	dir := t.TempDir()
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPayerKilled$")
		cmd.Env = append(os.Environ(), "PAYMENTS_PAYER_CHILD="+dir)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		var printed []contracts.SignedVoucher
		for sc.Scan() && len(printed) < 50+round*37 {
			b, err := hex.DecodeString(sc.Text())
			if err != nil {
				t.Fatalf("child printed %q", sc.Text())
			}
			v, err := contracts.ParseSignedVoucher(b)
			if err != nil {
				t.Fatal(err)
			}
			printed = append(printed, v)
		}
		cmd.Process.Kill()
		cmd.Wait()
		if len(printed) == 0 {
			t.Fatal("child printed nothing")
		}

		p := openPayer(t, dir, ch)
		last := printed[len(printed)-1]
		if p.Seqno() < last.Seqno {
			t.Fatalf("round %d: state at seqno %d, behind the printed voucher %d", round, p.Seqno(), last.Seqno)
		}
		if p.Seqno() == last.Seqno && p.Total() != last.Total {
			t.Fatalf("round %d: seqno %d has totals %d and %d", round, last.Seqno, last.Total, p.Total())
		}
		onDisk := p.Total()
		if _, _, err := p.CatchUp(last); err != nil { // the payee answers with the newest it got
			t.Fatalf("round %d: catch up with seqno %d: %v", round, last.Seqno, err)
		}
		v, err := p.Pay(1)
		if err != nil || v.Seqno != p.Seqno() || v.Seqno <= last.Seqno || v.Total != max(onDisk, last.Total)+1 {
			t.Fatalf("round %d: pay after the kill: %+v, %v", round, v, err)
		}
		t.Logf("round %d: killed after %d printed vouchers (total %d); %d on disk; next seqno %d", round, len(printed), last.Total, onDisk, v.Seqno)
		p.Close()
	}
}

// payerChild pays 1..∞ nanoTON and prints each voucher in hex, until it is killed.
func payerChild(dir string) {
	p, err := OpenPayer(dir, offChain(0), testKey("payer voucher"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := p.SetDeposit(1 << 50); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for i := uint64(1); ; i++ {
		v, err := p.Pay(i)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Stdout.WriteString(hex.EncodeToString(v.Bytes()) + "\n")
	}
}

// A damaged state file is an error that says so, never a fresh state; and the file stays as it was.
func TestCorruptStateRefused(t *testing.T) {
	ch := offChain(0)
	addr, _ := ch.Address()
	good := func(t *testing.T) (dir, path string) {
		dir = t.TempDir()
		p := openPayer(t, dir, ch)
		p.SetDeposit(1000)
		p.Pay(123)
		p.Close()
		return dir, filepath.Join(ChannelDir(dir, addr), "payer.json")
	}
	damage := map[string]func([]byte) []byte{
		"empty":         func([]byte) []byte { return nil },
		"truncated":     func(b []byte) []byte { return b[:len(b)/2] },
		"digit changed": func(b []byte) []byte { return bytes.Replace(b, []byte(`"total":123`), []byte(`"total":124`), 1) },
		"trailing data": func(b []byte) []byte { return append(b, "{}"...) },
		"not json":      func([]byte) []byte { return []byte("\x00\x01\x02") },
		"no checksum":   func(b []byte) []byte { return b[:bytes.Index(b, []byte(`,"sha256"`))] },
		"bit flipped":   func(b []byte) []byte { c := bytes.Clone(b); c[len(c)/3] ^= 0x04; return c },
		"payee's state": func(b []byte) []byte { return reencode(b, func(st *state) { st.Role = rolePayee }) },
		"other channel": func(b []byte) []byte {
			return reencode(b, func(st *state) { st.Channel = "0:" + strings.Repeat("ab", 32) })
		},
		"future version": func(b []byte) []byte { return reencode(b, func(st *state) { st.Version = stateVersion + 1 }) },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			dir, path := good(t)
			b, _ := os.ReadFile(path)
			bad := f(b)
			os.WriteFile(path, bad, 0o600)
			if _, err := OpenPayer(dir, ch, testKey("payer voucher")); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Fatalf("open: %v", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, bad) {
				t.Fatal("a refused state file was rewritten")
			}
		})
	}

	// A payee's voucher that is not the payer's, with a correct checksum.
	dir := t.TempDir()
	q := openPayee(t, dir, ch)
	q.SetDeposit(1000)
	p := openPayer(t, t.TempDir(), ch)
	p.SetDeposit(1000)
	v, _ := p.Pay(5)
	if err := q.Accept(v); err != nil {
		t.Fatal(err)
	}
	q.Close()
	path := filepath.Join(ChannelDir(dir, addr), "payee.json")
	b, _ := os.ReadFile(path)
	os.WriteFile(path, reencode(b, func(st *state) { st.Total = 6 }), 0o600)
	if _, err := OpenPayee(dir, ch); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("payee with a voucher that does not verify: %v", err)
	}
}

// reencode rewrites a state file's state with a valid checksum.
func reencode(b []byte, f func(*state)) []byte {
	st, err := decodeState(b)
	if err != nil {
		panic(err)
	}
	f(st)
	out, err := encodeState(st)
	if err != nil {
		panic(err)
	}
	return out
}

// One channel's state is open once at a time, in this process or any other.
func TestStateLocked(t *testing.T) {
	dir := t.TempDir()
	ch := offChain(0)
	p := openPayer(t, dir, ch)
	if _, err := OpenPayer(dir, ch, testKey("payer voucher")); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	q := openPayee(t, dir, ch) // the other end's state is another file
	if _, err := OpenPayee(dir, ch); !errors.Is(err, ErrLocked) {
		t.Fatalf("second payee: %v", err)
	}
	p.Close()
	q.Close()
	openPayer(t, dir, ch)
	if _, err := p.Pay(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("pay after close: %v", err)
	}
}

// FuzzLoadState feeds arbitrary bytes to the state file decoder, as a whole file and as the state
// inside a file with a correct checksum (so that the fuzzer gets past the hash): it must not panic, and
// what it accepts must encode back to a file it reads the same.
func FuzzLoadState(f *testing.F) {
	for _, seed := range seedCorpus() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, file := range [][]byte{b, withChecksum(b)} {
			st, err := decodeState(file)
			if err != nil {
				continue
			}
			again, err := encodeState(st)
			if err != nil {
				t.Fatal(err)
			}
			st2, err := decodeState(again)
			if err != nil {
				t.Fatalf("re-encoded state refused: %v", err)
			}
			if fmt.Sprintf("%+v", st) != fmt.Sprintf("%+v", st2) {
				t.Fatalf("round trip: %+v != %+v", st, st2)
			}
		}
	})
}

// withChecksum is a state file whose state is inner, byte for byte.
func withChecksum(inner []byte) []byte {
	sum := sha256.Sum256(inner)
	return fmt.Appendf(nil, `{"state":%s,"sha256":"%x"}`, inner, sum)
}

// seedCorpus is, for each seed state, its file and its inner JSON.
func seedCorpus() [][]byte {
	var out [][]byte
	for _, st := range seedStates() {
		file, err := encodeState(st)
		if err != nil {
			panic(err)
		}
		inner, _ := json.Marshal(st)
		out = append(out, file, inner)
	}
	return out
}

func seedStates() []*state {
	ch := "0:" + strings.Repeat("5c", 32)
	sig := bytes.Repeat([]byte{7}, 64)
	return []*state{
		{Version: 1, Role: rolePayer, Channel: ch},
		{Version: 1, Role: rolePayer, Channel: ch, Deposit: 1 << 40, Seqno: 77, Total: 123456789},
		{Version: 1, Role: rolePayee, Channel: ch, Deposit: 5, Seqno: 3, Total: 4, Signature: sig, Claimed: 2, ClaimedSeqno: 1},
		{Version: 1, Role: rolePayee, Channel: ch},
		{Version: 2, Role: rolePayer, Channel: ch, Deposit: 1 << 40, Seqno: 77, Total: 123456789, Reserved: 1100},
		{Version: 2, Role: rolePayee, Channel: ch, Deposit: 5, Seqno: 3, Total: 4, Signature: sig, Claimed: 2, ClaimedSeqno: 1},
	}
}

// TestSeedCorpus keeps the committed corpus of FuzzLoadState in step with seedStates
// (PAYMENTS_WRITE_CORPUS=1 rewrites it).
func TestSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzLoadState")
	for i, b := range seedCorpus() {
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		path := filepath.Join(dir, fmt.Sprintf("seed-%d", i))
		if os.Getenv("PAYMENTS_WRITE_CORPUS") != "" {
			os.MkdirAll(dir, 0o755)
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Errorf("%s is not the encoding of seed %d (PAYMENTS_WRITE_CORPUS=1 go test -run TestSeedCorpus): %v", path, i, err)
		}
	}
}

// Concurrent payments get distinct seqnos and add up; vouchers that reach the payee out of order are
// refused as stale, and the newest one, which covers them, is what it keeps.
func TestConcurrentPayAccept(t *testing.T) {
	ch := offChain(0)
	p := openPayer(t, t.TempDir(), ch)
	q := openPayee(t, t.TempDir(), ch)
	p.SetDeposit(1 << 30)
	q.SetDeposit(1 << 30)
	const workers, each = 4, 25
	vouchers := make(chan contracts.SignedVoucher, workers*each)
	errs := make(chan error, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				v, err := p.Pay(10)
				if err != nil {
					errs <- err
					return
				}
				vouchers <- v
				if err := q.Accept(v); err != nil && !errors.Is(err, ErrStale) {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(vouchers)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for v := range vouchers {
		if seen[v.Seqno] || v.Total != 10*v.Seqno {
			t.Fatalf("voucher seqno %d, total %d (seen before: %v)", v.Seqno, v.Total, seen[v.Seqno])
		}
		seen[v.Seqno] = true
	}
	last, _ := p.Last()
	if p.Seqno() != workers*each || p.Total() != 10*workers*each {
		t.Fatalf("payer at seqno %d, total %d", p.Seqno(), p.Total())
	}
	if err := q.Accept(last); err != nil { // the newest, re-sent, is kept whatever order the rest came in
		t.Fatal(err)
	}
	if newest, _ := q.Newest(); newest != last {
		t.Fatalf("payee keeps %d, newest is %d", newest.Seqno, last.Seqno)
	}
}
