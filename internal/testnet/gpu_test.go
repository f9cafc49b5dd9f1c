package testnet

import (
	"context"
	"errors"
	"testing"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/nvidia"
	"github.com/cocoon-go/cocoon/attest/nvidia/nvidiatest"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/internal/waitfor"
)

const (
	fromGPU = "answered on a confidential GPU"
	fromCPU = "answered without a GPU"
)

// startGPUNet starts worker 0 with GPU evidence from gpu, worker 1 with
// none, and a proxy and client that verify GPU evidence against nras's keys
// and require it where require says so.
func startGPUNet(t *testing.T, nras *nvidiatest.NRAS, gpu attest.GPUProducer, require func(role string) bool) *Net {
	return Start(t, Options{
		Engines: []engine.Engine{newFake(fromGPU), newFake(fromCPU)},
		Fanout:  1, // each request sealed to one worker the client picks at random
		GPU:     []attest.GPUProducer{gpu},
		Checker: func(role string, c *attest.Checker) {
			c.GPU = nvidia.NewVerifier(nras.Keys())
			c.Policy.RequireGPU = require(role)
		},
	})
}

// answers sends n chat requests and counts the answers by text.
func answers(t *testing.T, n *Net, count int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := range count {
		resp, err := sdk(n).Chat.Completions.New(context.Background(), chat("hello"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got[resp.Choices[0].Message.Content]++
	}
	return got
}

// wantGPURefusal checks that errs hold a refusal of role by the gpu rule.
func wantGPURefusal(t *testing.T, role string, errs []error) {
	t.Helper()
	for _, err := range errs {
		if pe := (*attest.PolicyError)(nil); errors.As(err, &pe) && pe.Rule == attest.RuleGPU {
			return
		}
	}
	t.Errorf("%s refusals %v, want one by rule %q", role, errs, attest.RuleGPU)
}

// TestRequireGPU runs a network with one worker attesting two NVIDIA GPUs
// through NRAS (a double) and one without a GPU.
func TestRequireGPU(t *testing.T) {
	nras := nvidiatest.NewNRAS()
	defer nras.Close()
	gpu := &nvidia.Producer{Collector: nvidiatest.Collector{GPUs: 2}, NRAS: nras.Client()}
	always := func(string) bool { return true }

	t.Run("required", func(t *testing.T) {
		n := startGPUNet(t, nras, gpu, always)
		if got := answers(t, n, 6); got[fromGPU] != 6 {
			t.Errorf("answers %v, want all from the GPU worker", got)
		}
		if got := n.Proxy.Workers(); got != 1 {
			t.Errorf("proxy admitted %d workers, want 1", got)
		}
		wantGPURefusal(t, "proxy", n.Refusals("proxy"))
		dir, err := n.Client.Directory(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(dir) != 1 || dir[0].KeyID != n.Workers[0].KeyID() {
			t.Fatalf("client's directory has %d workers, want only the GPU worker", len(dir))
		}
		if g := dir[0].Claims.GPU; g == nil || g.Kind != nvidia.Kind || len(g.GPUs) != 2 {
			t.Errorf("GPU claims = %+v, want two GPUs verified by NRAS", g)
		}
		if got := waitfor.Value(func() uint64 { return n.Ledger.Worker(hexID(n.Workers[0].KeyID())).Requests }, func(r uint64) bool { return r == 6 }); got != 6 {
			t.Errorf("GPU worker paid for %d requests, want 6", got)
		}
		if got := n.Ledger.Worker(hexID(n.Workers[1].KeyID())).Requests; got != 0 {
			t.Errorf("worker without a GPU paid for %d requests", got)
		}
	})

	// A client that requires a GPU refuses a worker without one even when
	// its proxy lists it.
	t.Run("required by the client only", func(t *testing.T) {
		n := startGPUNet(t, nras, gpu, func(role string) bool { return role == "client" })
		if got := answers(t, n, 6); got[fromGPU] != 6 {
			t.Errorf("answers %v, want all from the GPU worker", got)
		}
		if got := n.Proxy.Workers(); got != 2 {
			t.Errorf("proxy admitted %d workers, want 2", got)
		}
		wantGPURefusal(t, "client", n.Refusals("client"))
	})

	t.Run("not required", func(t *testing.T) {
		n := startGPUNet(t, nras, gpu, func(string) bool { return false })
		got := map[string]int{}
		for i := 0; i < 40 && (got[fromGPU] == 0 || got[fromCPU] == 0); i++ {
			for a, c := range answers(t, n, 1) {
				got[a] += c
			}
		}
		if got[fromGPU] == 0 || got[fromCPU] == 0 {
			t.Errorf("answers %v, want both workers to serve", got)
		}
		if errs := append(n.Refusals("proxy"), n.Refusals("client")...); len(errs) > 0 {
			t.Errorf("refusals %v", errs)
		}
	})

	// GPU evidence signed by an NRAS whose key is not pinned (here another
	// double) counts for nothing: its worker is refused as well.
	t.Run("unpinned NRAS key", func(t *testing.T) {
		rogue := nvidiatest.NewNRAS()
		defer rogue.Close()
		n := Start(t, Options{
			Engines: []engine.Engine{newFake(fromGPU), newFake("answered on a GPU nobody vouched for")},
			GPU: []attest.GPUProducer{gpu,
				&nvidia.Producer{Collector: nvidiatest.Collector{GPUs: 2}, NRAS: rogue.Client()}},
			Checker: func(_ string, c *attest.Checker) {
				c.GPU = nvidia.NewVerifier(nras.Keys())
				c.Policy.RequireGPU = true
			},
		})
		if got := answers(t, n, 4); got[fromGPU] != 4 {
			t.Errorf("answers %v, want all from the GPU worker", got)
		}
		if got := n.Proxy.Workers(); got != 1 {
			t.Errorf("proxy admitted %d workers, want 1", got)
		}
		errs := n.Refusals("proxy")
		if len(errs) == 0 || !errors.Is(errs[0], nvidia.ErrUnknownKey) || !errors.Is(errs[0], attest.ErrGPU) {
			t.Errorf("proxy refusals %v, want ErrUnknownKey", errs)
		}
	})
}
