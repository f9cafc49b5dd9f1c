package contracts

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/tvm/cell"
)

// TestEmbeddedCode checks the embedded code against the code hashes the build wrote.
func TestEmbeddedCode(t *testing.T) {
	for name, code := range map[string]func() []byte{
		"root":    func() []byte { return RootCode().Hash() },
		"channel": func() []byte { return ChannelCode().Hash() },
	} {
		want, err := os.ReadFile("build/" + name + ".hash")
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(code()); got != strings.TrimSpace(string(want)) {
			t.Errorf("%s code hash %s, build says %s", name, got, want)
		}
	}
}

// TestGas measures what each channel operation costs in the TVM with mainnet prices, and
// fails if one grows past a generous bound. Run with -v to see the numbers:
//
//	go test -run TestGas -v ./contracts
func TestGas(t *testing.T) {
	f := newChannel(t, 10*ton)
	ops := []struct {
		name  string
		run   func() *txResult
		bound int64
	}{
		{"top-up", func() *txResult { return f.send(f.payer.addr, f.addr, ton+TopUpReserve, TopUpBody(1, ton), nil) }, 5000},
		{"claim", func() *txResult { return f.claim(f.voucher(1, ton)) }, 8000},
		{"claim (next voucher)", func() *txResult { return f.claim(f.voucher(2, 2*ton)) }, 8000},
		{"start close", func() *txResult { return f.send(f.payer.addr, f.addr, ton/10, StartCloseBody(2), nil) }, 5000},
		{"finish close", func() *txResult {
			f.now += uint32(closeDelay / time.Second)
			return f.send(f.payer.addr, f.addr, ton/10, FinishCloseBody(3), nil)
		}, 8000},
	}
	for _, op := range ops {
		r := op.run()
		mustExit(t, op.name, r, 0)
		var fwd uint64
		for _, m := range r.out {
			fwd += m.FwdFee.Nano().Uint64()
		}
		t.Logf("%-22s gas %5d  fees %7d nanoTON (incl. storage %d), forwarding %d", op.name, r.gas, r.fees, r.storage, fwd)
		if r.gas > op.bound {
			t.Errorf("%s used %d gas, bound %d", op.name, r.gas, op.bound)
		}
	}

	root := newRoot(t)
	register, _ := RegisterProxyBody(1, Proxy{Address: root.stranger.addr, PublicKey: root.stranger.pub(), Endpoint: "https://proxy.example:8443"})
	for name, body := range map[string]*cell.Cell{
		"root: allow model":    SetModelBody(1, hashOf("m"), true),
		"root: register proxy": register,
	} {
		r := root.send(root.owner.addr, root.addr, ton/10, body, nil)
		mustExit(t, name, r, 0)
		t.Logf("%-22s gas %5d  fees %7d nanoTON", name, r.gas, r.fees)
	}
}
