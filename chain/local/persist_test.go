package local

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/tlb"

	"github.com/cocoon-go/cocoon/chain"
)

// fingerprint hashes everything a chain holds: each account's state and transactions, and the counters.
func fingerprint(c *Chain) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	keys := make([]string, 0, len(c.accounts))
	for k := range c.accounts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		a := c.accounts[k]
		fmt.Fprintf(h, "%s %x %d\n", k, a.prep.ShardAccountCell().Hash(), len(a.txs))
		for _, tx := range a.txs {
			h.Write(tx.Hash)
		}
	}
	fmt.Fprintf(h, "%+v %d", c.st, c.seq)
	return fmt.Sprintf("%x", h.Sum(nil))
}

// kill stops a chain the way a killed process would: no snapshot, files closed as they are.
func kill(c *Chain) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.changed)
		c.store.close()
	}
}

// workload funds two wallets and has them pay each other; step i of n.
type workload struct {
	c          *Chain
	alice, bob *chain.Wallet
}

func newWorkload(t *testing.T, c *Chain) *workload {
	return &workload{c: c, alice: fundedWallet(t, c, "alice", 100*ton), bob: fundedWallet(t, c, "bob", 100*ton)}
}

// rebind points the workload's wallets at a reopened chain.
func (w *workload) rebind(t *testing.T, c *Chain) {
	t.Helper()
	w.c = c
	var err error
	if w.alice, err = chain.NewWallet(c, testKey("alice")); err != nil {
		t.Fatal(err)
	}
	if w.bob, err = chain.NewWallet(c, testKey("bob")); err != nil {
		t.Fatal(err)
	}
}

func (w *workload) pay(i int) error {
	from, to := w.alice, w.bob
	if i%2 == 1 {
		from, to = w.bob, w.alice
	}
	_, err := from.Send(context.Background(), chain.Transfer{To: to.Address(), Amount: uint64(i+1) * ton / 10})
	return err
}

func TestReopen(t *testing.T) {
	for _, every := range []int{1, 3, 1000} {
		t.Run(fmt.Sprintf("snapshot every %d", every), func(t *testing.T) {
			dir := t.TempDir()
			c := openTest(t, dir, &Options{SnapshotEvery: every})
			w := newWorkload(t, c)
			for i := range 5 {
				if err := w.pay(i); err != nil {
					t.Fatal(err)
				}
			}
			want := fingerprint(c)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}

			c = openTest(t, dir, &Options{SnapshotEvery: every})
			if got := fingerprint(c); got != want {
				t.Fatal("state differs after close and reopen")
			}
			checkConserved(t, c)

			// Killed without a final snapshot: the journal has what the snapshot lacks.
			w.rebind(t, c)
			for i := range 4 {
				if err := w.pay(i); err != nil {
					t.Fatal(err)
				}
			}
			want = fingerprint(c)
			kill(c)
			c = openTest(t, dir, &Options{SnapshotEvery: every})
			if got := fingerprint(c); got != want {
				t.Fatal("state differs after a kill and reopen")
			}
			w.rebind(t, c)
			if err := w.pay(0); err != nil { // and the chain goes on: seqnos continue
				t.Fatal(err)
			}
			checkConserved(t, c)
		})
	}
}

// TestCrash kills the chain between the steps of applying a message and of writing a snapshot, and checks
// that reopening gives exactly the state of a chain that was never interrupted: nothing lost, nothing
// applied twice.
func TestCrash(t *testing.T) {
	// The reference: the same work, uninterrupted.
	ref := openTest(t, t.TempDir(), &Options{SnapshotEvery: 1, NoSync: true})
	rw := newWorkload(t, ref)
	for i := range 3 {
		if err := rw.pay(i); err != nil {
			t.Fatal(err)
		}
	}
	want := fingerprint(ref)

	for _, step := range []string{"journaled", "snapshot written", "snapshot renamed"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			c := openTest(t, dir, &Options{SnapshotEvery: 1, NoSync: true})
			w := newWorkload(t, c)
			if err := w.pay(0); err != nil {
				t.Fatal(err)
			}
			armed := true
			c.crash = func(s string) bool {
				if s == step && armed {
					armed = false
					return true
				}
				return false
			}
			if err := w.pay(1); !errors.Is(err, errSimulatedCrash) {
				t.Fatalf("pay with a crash at %q: %v", step, err)
			}
			if _, err := c.Account(context.Background(), w.alice.Address()); !errors.Is(err, ErrClosed) {
				t.Fatalf("a crashed chain still answers: %v", err)
			}
			kill(c)

			for range 2 { // recovering twice must not apply anything twice
				c = openTest(t, dir, &Options{SnapshotEvery: 1, NoSync: true})
				c.Close()
			}
			c = openTest(t, dir, &Options{SnapshotEvery: 1, NoSync: true})
			w.rebind(t, c)
			if err := w.pay(2); err != nil {
				t.Fatal(err)
			}
			if got := fingerprint(c); got != want {
				t.Fatal("state after the crash differs from the uninterrupted chain's")
			}
			checkConserved(t, c)
		})
	}
}

func TestTornJournal(t *testing.T) {
	dir := t.TempDir()
	c := openTest(t, dir, &Options{NoSync: true})
	w := newWorkload(t, c)
	if err := w.pay(0); err != nil {
		t.Fatal(err)
	}
	want := fingerprint(c)
	kill(c)

	// A kill in the middle of a write leaves part of a record.
	j := filepath.Join(dir, journalFile)
	before, err := os.Stat(j)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(j, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, '{', '"'})
	f.Close()

	c = openTest(t, dir, &Options{NoSync: true})
	if got := fingerprint(c); got != want {
		t.Fatal("state differs after dropping a torn record")
	}
	if after, _ := os.Stat(j); after.Size() != before.Size() {
		t.Fatalf("journal is %d bytes, want the torn tail cut back to %d", after.Size(), before.Size())
	}
	w.rebind(t, c)
	if err := w.pay(1); err != nil {
		t.Fatal(err)
	}
}

func TestOneOwner(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, nil)
	if _, err := Open(dir, &Options{Logger: quiet()}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
}

// TestKillProcess kills -9 a process that is sending transfers as fast as it can, then reopens its chain:
// every acknowledged transfer is there, at most the one in flight besides, and no transfer is half
// applied (each wallet's external transactions match the other wallet's receipts).
func TestKillProcess(t *testing.T) {
	if dir := os.Getenv("LOCAL_CHAIN_KILL_DIR"); dir != "" {
		killChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillProcess$")
	cmd.Env = append(os.Environ(), "LOCAL_CHAIN_KILL_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := 0
	sc := bufio.NewScanner(out)
	for acked < 30 && sc.Scan() {
		if strings.HasPrefix(sc.Text(), "paid ") {
			acked++
		}
	}
	time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond) // land anywhere in the next transfer
	cmd.Process.Kill()
	for sc.Scan() { // a line written before the kill is an acknowledgement too
		if strings.HasPrefix(sc.Text(), "paid ") {
			acked++
		}
	}
	cmd.Wait()
	if acked < 30 {
		t.Fatalf("the child acknowledged %d transfers", acked)
	}

	c := openTest(t, dir, nil)
	checkConserved(t, c)
	ctx := context.Background()
	alice, _ := chain.NewWallet(c, testKey("alice"))
	bob, _ := chain.NewWallet(c, testKey("bob"))
	external := func(w *chain.Wallet) (n int) {
		txs, err := c.Transactions(ctx, w.Address(), 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, tx := range txs {
			if tx.In.Type == tlb.MsgTypeExternalIn {
				n++
			}
		}
		return n
	}
	received := func(w, from *chain.Wallet) (n int) {
		txs, _ := c.Transactions(ctx, w.Address(), 0, 1000)
		for _, tx := range txs {
			if tx.In.Src != nil && tx.In.Src.Equals(from.Address()) {
				n++
			}
		}
		return n
	}
	// One external message deploys each wallet; the others pay.
	sent := external(alice) + external(bob) - 2
	if sent < acked || sent > acked+1 {
		t.Fatalf("%d transfers on the chain, %d acknowledged", sent, acked)
	}
	if external(alice)-1 != received(bob, alice) || external(bob)-1 != received(alice, bob) {
		t.Fatal("a transfer is half applied")
	}
	t.Logf("killed after %d acknowledged transfers; %d on the chain", acked, sent)
}

func killChild(t *testing.T, dir string) {
	c, err := Open(dir, &Options{Logger: quiet(), SnapshotEvery: 7})
	if err != nil {
		t.Fatal(err)
	}
	w := newWorkload(t, c)
	for i := 0; ; i++ {
		if err := w.pay(i % 2); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("paid %d\n", i)
	}
}
