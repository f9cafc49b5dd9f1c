package local

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"

	"github.com/cocoon-go/cocoon/chain"
)

const ton = 1_000_000_000

// epoch is the pinned clock of the tests.
var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openTest(t testing.TB, dir string, opts *Options) *Chain {
	t.Helper()
	if opts == nil {
		opts = &Options{}
	}
	if opts.Now == nil {
		opts.Now = (&clock{epoch}).now
	}
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	c, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// backends runs f against a local chain and against the same kind of chain served over HTTP.
func backends(t *testing.T, f func(t *testing.T, c chain.Chain, lc *Chain)) {
	t.Run("local", func(t *testing.T) {
		lc := openTest(t, t.TempDir(), &Options{NoSync: true})
		f(t, lc, lc)
	})
	t.Run("served", func(t *testing.T) {
		lc := openTest(t, t.TempDir(), &Options{NoSync: true})
		srv := httptest.NewServer(Handler(lc))
		t.Cleanup(srv.Close)
		cl, err := Dial(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		f(t, cl, lc)
	})
}

func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// fundedWallet returns a deployed wallet holding about amount.
func fundedWallet(t testing.TB, c chain.Chain, name string, amount uint64) *chain.Wallet {
	t.Helper()
	ctx := context.Background()
	w, err := chain.NewWallet(c, testKey(name))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := c.(chain.Faucet).Fund(ctx, w.Address(), amount)
	if err != nil {
		t.Fatal(err)
	}
	if !tx.In.Src.Equals(FaucetAddress) || tx.In.Value != amount {
		t.Fatalf("faucet transaction from %s of %d", tx.In.Src, tx.In.Value)
	}
	if _, err := w.Send(ctx); err != nil { // an empty message deploys it
		t.Fatal(err)
	}
	return w
}

func balance(t testing.TB, c chain.Chain, addr *address.Address) uint64 {
	t.Helper()
	acc, err := c.Account(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	return acc.Balance
}

func checkConserved(t testing.TB, c *Chain) {
	t.Helper()
	s := c.Supply()
	if !s.Conserved() {
		t.Fatalf("value not conserved: minted %d != balances %d + fees %d + forward fees %d (off by %d)",
			s.Minted, s.Balances, s.Fees, s.FwdFees, int64(s.Minted-s.Balances-s.Fees-s.FwdFees))
	}
}

// relayCode is testdata/relay.boc, compiled from testdata/relay.tolk with @ton/tolk-js 1.3.0.
func relayCode(t testing.TB) *cell.Cell {
	t.Helper()
	b, err := os.ReadFile("testdata/relay.boc")
	if err != nil {
		t.Fatal(err)
	}
	code, err := cell.FromBOC(b)
	if err != nil {
		t.Fatal(err)
	}
	if h := hex.EncodeToString(code.Hash()); h != "77345c013fafe420e78bbf4247a8876831c8c6bb28c0e36fb0a83b339d173317" {
		t.Fatalf("relay code hash %s: recompile testdata/relay.tolk and update the test", h)
	}
	return code
}

func relayInit(t testing.TB, id uint32) (*tlb.StateInit, *address.Address) {
	t.Helper()
	data := cell.BeginCell().MustStoreUInt(uint64(id), 32).MustStoreUInt(0, 32).MustStoreCoins(0).MustStoreUInt(0, 32).EndCell()
	init := &tlb.StateInit{Code: relayCode(t), Data: data}
	addr, err := chain.StateInitAddress(0, init)
	if err != nil {
		t.Fatal(err)
	}
	return init, addr
}

// deployRelay deploys relay number id from w with amount and returns its address.
func deployRelay(t testing.TB, c chain.Chain, w *chain.Wallet, id uint32, amount uint64) *address.Address {
	t.Helper()
	ctx := context.Background()
	init, addr := relayInit(t, id)
	tx, err := w.Send(ctx, chain.Transfer{To: addr, Amount: amount, StateInit: init})
	if err != nil {
		t.Fatal(err)
	}
	trace, err := chain.Trace(ctx, c, tx)
	if err != nil {
		t.Fatal(err)
	}
	if len(trace) != 1 || trace[0].Aborted || trace[0].EndStatus != tlb.AccountStatusActive {
		t.Fatalf("deploy: %d transactions, first %+v", len(trace), trace[0])
	}
	return addr
}

func relayCounters(t testing.TB, c chain.Chain, addr *address.Address) (received, value, bounced int64) {
	t.Helper()
	res, err := c.RunGetMethod(context.Background(), addr, "counters")
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 {
		t.Fatalf("counters: %v", res)
	}
	return res[0].(*big.Int).Int64(), res[1].(*big.Int).Int64(), res[2].(*big.Int).Int64()
}

func forwardBody(to *address.Address, amount uint64, body *cell.Cell) *cell.Cell {
	if body == nil {
		body = cell.BeginCell().EndCell()
	}
	return cell.BeginCell().MustStoreUInt(1, 32).MustStoreAddr(to).MustStoreCoins(amount).MustStoreRef(body).EndCell()
}

var failBody = cell.BeginCell().MustStoreUInt(2, 32).EndCell()

func TestTransferBetweenWallets(t *testing.T) {
	backends(t, func(t *testing.T, c chain.Chain, lc *Chain) {
		ctx := context.Background()
		alice := fundedWallet(t, c, "alice", 10*ton)
		bob := fundedWallet(t, c, "bob", 1*ton)
		a0, b0 := balance(t, c, alice.Address()), balance(t, c, bob.Address())

		tx, err := alice.Send(ctx, chain.Transfer{To: bob.Address(), Amount: 2 * ton})
		if err != nil {
			t.Fatal(err)
		}
		if len(tx.Out) != 1 || tx.Out[0].Value != 2*ton {
			t.Fatalf("alice's transaction sent %+v", tx.Out)
		}
		trace, err := chain.Trace(ctx, c, tx)
		if err != nil {
			t.Fatal(err)
		}
		if len(trace) != 1 || !trace[0].Address.Equals(bob.Address()) || trace[0].LT <= tx.LT {
			t.Fatalf("trace %+v", trace)
		}
		a1, b1 := balance(t, c, alice.Address()), balance(t, c, bob.Address())
		// The sender pays the value, its transaction's fees (gas, action fee) and the forwarding fee the
		// message carries; the receiver gets the value less its own transaction's fees.
		if want := 2*ton + tx.Fees + tx.Out[0].FwdFee; a0-a1 != want {
			t.Errorf("alice paid %d, want %d", a0-a1, want)
		}
		if want := 2*ton - trace[0].Fees; b1-b0 != want {
			t.Errorf("bob got %d, want %d", b1-b0, want)
		}
		t.Logf("a transfer costs the sender %d nanoTON in fees and forwarding, the receiver %d", tx.Fees+tx.Out[0].FwdFee, trace[0].Fees)

		seqno, err := alice.Seqno(ctx)
		if err != nil || seqno != 2 {
			t.Fatalf("seqno %d, %v", seqno, err)
		}
		hist, err := c.Transactions(ctx, alice.Address(), 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 3 || hist[0].LT != tx.LT || hist[2].In.Src == nil || !hist[2].In.Src.Equals(FaucetAddress) {
			t.Fatalf("history: %d transactions", len(hist))
		}
		older, err := c.Transactions(ctx, alice.Address(), hist[0].LT, 1)
		if err != nil || len(older) != 1 || older[0].LT != hist[1].LT {
			t.Fatalf("history before %d: %v", hist[0].LT, err)
		}
		checkConserved(t, lc)
	})
}

func TestDeployContractAndGetMethod(t *testing.T) {
	backends(t, func(t *testing.T, c chain.Chain, lc *Chain) {
		ctx := context.Background()
		w := fundedWallet(t, c, "deployer", 10*ton)
		relay := deployRelay(t, c, w, 1, ton)
		received, value, bounced := relayCounters(t, c, relay)
		if received != 1 || value != ton || bounced != 0 {
			t.Fatalf("counters %d %d %d", received, value, bounced)
		}
		res, err := c.RunGetMethod(ctx, relay, "diff", 10, big.NewInt(3))
		if err != nil || len(res) != 1 || res[0].(*big.Int).Int64() != 7 {
			t.Fatalf("diff(10, 3) = %v, %v", res, err)
		}
		pk, err := c.RunGetMethod(ctx, w.Address(), "get_public_key")
		if err != nil || len(pk) != 1 || !bytesEqual(pk[0].(*big.Int).FillBytes(make([]byte, 32)), testKey("deployer").Public().(ed25519.PublicKey)) {
			t.Fatalf("get_public_key = %v, %v", pk, err)
		}

		var exit *chain.ExitError
		if _, err := c.RunGetMethod(ctx, relay, "no_such_method"); !errors.As(err, &exit) || exit.Code != 11 || exit.Method != "no_such_method" {
			t.Fatalf("unknown method: %v", err)
		}
		_, nowhere := relayInit(t, 99)
		if _, err := c.RunGetMethod(ctx, nowhere, "counters"); !errors.Is(err, chain.ErrNotActive) {
			t.Fatalf("get-method of nothing: %v", err)
		}
		acc, err := c.Account(ctx, nowhere)
		if err != nil || acc.Status != tlb.AccountStatusNonExist || acc.Balance != 0 {
			t.Fatalf("account of nothing: %+v, %v", acc, err)
		}
		checkConserved(t, lc)
	})
}

func TestBounce(t *testing.T) {
	backends(t, func(t *testing.T, c chain.Chain, lc *Chain) {
		ctx := context.Background()
		w := fundedWallet(t, c, "bouncer", 10*ton)
		relay := deployRelay(t, c, w, 2, ton)
		w0 := balance(t, c, w.Address())

		tx, err := w.Send(ctx, chain.Transfer{To: relay, Amount: ton, Bounce: true, Body: failBody})
		if err != nil {
			t.Fatal(err)
		}
		trace, err := chain.Trace(ctx, c, tx)
		if err != nil {
			t.Fatal(err)
		}
		if len(trace) != 2 {
			t.Fatalf("%d transactions after the wallet's, want the failure and the bounce", len(trace))
		}
		failed, back := trace[0], trace[1]
		if !failed.Aborted || failed.ExitCode != 100 || !failed.Bounced || len(failed.Out) != 1 || !failed.Out[0].Bounced {
			t.Fatalf("failed transaction: aborted %v exit %d bounced %v", failed.Aborted, failed.ExitCode, failed.Bounced)
		}
		if !back.Address.Equals(w.Address()) || !back.In.Bounced {
			t.Fatalf("bounce went to %s", back.Address)
		}
		if received, _, _ := relayCounters(t, c, relay); received != 1 {
			t.Fatalf("the failed message was counted: received %d", received)
		}
		// The wallet gets its value back, less what the failed transaction and the bounce cost.
		w1 := balance(t, c, w.Address())
		lost := tx.Fees + tx.Out[0].FwdFee + failed.Fees + failed.Out[0].FwdFee + back.Fees
		if w0-w1 != lost {
			t.Fatalf("wallet lost %d, want %d in fees", w0-w1, lost)
		}

		// A bounceable message to an address with no contract comes back too.
		_, nowhere := relayInit(t, 98)
		tx, err = w.Send(ctx, chain.Transfer{To: nowhere, Amount: ton, Bounce: true})
		if err != nil {
			t.Fatal(err)
		}
		trace, err = chain.Trace(ctx, c, tx)
		if err != nil {
			t.Fatal(err)
		}
		if len(trace) != 2 || trace[0].ComputeSkipped != "NO_STATE" || !trace[0].Bounced || !trace[1].In.Bounced {
			t.Fatalf("bounce from nowhere: %d transactions", len(trace))
		}
		if b := balance(t, c, nowhere); b != 0 {
			t.Fatalf("nowhere kept %d", b)
		}
		checkConserved(t, lc)
	})
}

func TestMessageChain(t *testing.T) {
	backends(t, func(t *testing.T, c chain.Chain, lc *Chain) {
		ctx := context.Background()
		w := fundedWallet(t, c, "chainer", 10*ton)
		a := deployRelay(t, c, w, 10, ton)
		b := deployRelay(t, c, w, 11, ton)
		cc := deployRelay(t, c, w, 12, ton)

		// wallet -> a -> b -> c, each hop carrying less.
		body := forwardBody(b, ton/2, forwardBody(cc, ton/4, nil))
		tx, err := w.Send(ctx, chain.Transfer{To: a, Amount: ton, Bounce: true, Body: body})
		if err != nil {
			t.Fatal(err)
		}
		trace, err := chain.Trace(ctx, c, tx)
		if err != nil {
			t.Fatal(err)
		}
		if len(trace) != 3 {
			t.Fatalf("%d transactions, want 3", len(trace))
		}
		lt := tx.LT
		for i, want := range []*address.Address{a, b, cc} {
			if !trace[i].Address.Equals(want) || trace[i].Aborted || trace[i].LT <= lt {
				t.Fatalf("hop %d: %s at lt %d aborted %v", i, trace[i].Address, trace[i].LT, trace[i].Aborted)
			}
			lt = trace[i].LT
		}
		if received, value, _ := relayCounters(t, c, cc); received != 2 || value != ton+ton/4 {
			t.Fatalf("last hop counted %d messages, %d nanoTON", received, value)
		}
		checkConserved(t, lc)
	})
}

func TestRejectedAndTimeout(t *testing.T) {
	backends(t, func(t *testing.T, c chain.Chain, lc *Chain) {
		ctx := context.Background()
		w := fundedWallet(t, c, "replayer", 10*ton)
		now, err := c.Now(ctx)
		if err != nil || !now.Equal(epoch) {
			t.Fatalf("now %v, %v", now, err)
		}
		msg, err := w.Message(nil, 1, now.Add(time.Minute), false)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SendExternal(ctx, msg); err != nil {
			t.Fatal(err)
		}
		if err := c.SendExternal(ctx, msg); !errors.Is(err, chain.ErrRejected) {
			t.Fatalf("replayed message: %v", err)
		}
		expired, _ := w.Message(nil, 2, now.Add(-time.Second), false)
		if err := c.SendExternal(ctx, expired); !errors.Is(err, chain.ErrRejected) {
			t.Fatalf("expired message: %v", err)
		}

		internal, err := faucetMessage(w.Address(), ton, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SendExternal(ctx, internal); !errors.Is(err, chain.ErrRejected) {
			t.Fatalf("internal message sent as external: %v", err)
		}

		tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		acc, _ := c.Account(ctx, w.Address())
		if _, err := c.WaitTransaction(tctx, w.Address(), acc.LastLT); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("wait with nothing coming: %v", err)
		}
		checkConserved(t, lc)
	})
}

// A waiter blocked on an account with no transaction yet wakes with the
// first one. In process, a synctest bubble sees it blocked before the
// transfer; served, the transfer comes once the wait reached the server.
func TestWaitTransactionWakes(t *testing.T) {
	addr := address.NewAddress(0, 0, make([]byte, 32))
	wakes := func(t *testing.T, c chain.Chain, lc *Chain, waiting func()) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got := make(chan *chain.Transaction, 1)
		go func() {
			tx, err := c.WaitTransaction(ctx, addr, 0)
			if err != nil {
				t.Error(err)
			}
			got <- tx
		}()
		waiting()
		if len(got) != 0 {
			t.Fatal("the wait returned before any transaction")
		}
		if _, err := lc.Fund(ctx, addr, ton); err != nil {
			t.Fatal(err)
		}
		if tx := <-got; tx == nil || tx.In.Value != ton {
			t.Fatalf("woke with %+v", tx)
		}
	}
	t.Run("local", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			lc := openTest(t, t.TempDir(), &Options{NoSync: true})
			wakes(t, lc, lc, synctest.Wait)
		})
	})
	t.Run("served", func(t *testing.T) {
		lc := openTest(t, t.TempDir(), &Options{NoSync: true})
		reached := make(chan struct{}, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/wait" {
				select {
				case reached <- struct{}{}:
				default: // a wait polled again
				}
			}
			Handler(lc).ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		cl, err := Dial(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		wakes(t, cl, lc, func() { <-reached })
	})
}

func TestStatusSaysLocal(t *testing.T) {
	backends(t, func(t *testing.T, c chain.Chain, lc *Chain) {
		if c.Name() != "local" || c.GlobalID() != GlobalID {
			t.Fatalf("name %q, global id %d", c.Name(), c.GlobalID())
		}
		st := lc.Status()
		if cl, ok := c.(*Client); ok {
			var err error
			if st, err = cl.Status(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if st.Chain != "local" || !strings.Contains(st.Note, "not TON") {
			t.Fatalf("status %+v", st)
		}
	})
}

func TestLogsSayLocal(t *testing.T) {
	var buf strings.Builder
	c, err := Open(t.TempDir(), &Options{Logger: slog.New(slog.NewTextHandler(&buf, nil)), NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !strings.Contains(buf.String(), "chain=local") || !strings.Contains(buf.String(), "not TON") {
		t.Fatalf("logs: %s", buf.String())
	}
}

func TestConfigPrices(t *testing.T) {
	root, err := Config()
	if err != nil {
		t.Fatal(err)
	}
	cfg := tlb.BlockchainConfig{Root: root}
	id, err := cfg.GetGlobalID()
	if err != nil || id.GlobalID != GlobalID {
		t.Fatalf("global id %v, %v", id, err)
	}
	v, _ := cfg.GetGlobalVersion()
	gas, _ := cfg.GetGasPrices(false)
	fwd, _ := cfg.GetMsgForwardPrices(false)
	mcGas, _ := cfg.GetGasPrices(true)
	mcFwd, _ := cfg.GetMsgForwardPrices(true)
	st, _ := cfg.GetStoragePrices(uint32(epoch.Unix()))
	// The figures the Config doc comment states.
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"global version", uint64(v.Version), 13},
		{"gas price", gas.GasPrice, 4369067},
		{"flat gas limit", gas.FlatGasLimit, 100},
		{"flat gas price", gas.FlatGasPrice, 6667},
		{"gas limit", gas.GasLimit, 1_000_000},
		{"gas credit", gas.GasCredit, 10_000},
		{"lump price", fwd.LumpPrice, 66667},
		{"bit price", fwd.BitPrice, 4369067},
		{"cell price", fwd.CellPrice, 436906667},
		{"first frac", uint64(fwd.FirstFrac), 21845},
		{"storage bit", st.BitPrice, 1},
		{"storage cell", st.CellPrice, 500},
		{"mc storage bit", st.MCBitPrice, 1000},
		{"mc storage cell", st.MCCellPrice, 500_000},
		{"mc gas price", mcGas.GasPrice, 655_360_000},
		{"mc lump price", mcFwd.LumpPrice, 10_000_000},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func bytesEqual(a, b []byte) bool { return string(a) == string(b) }

var (
	_ chain.Chain  = (*Chain)(nil)
	_ chain.Faucet = (*Chain)(nil)
	_ chain.Chain  = (*Client)(nil)
	_ chain.Faucet = (*Client)(nil)
)
