package price

import (
	"errors"
	"math"
	"testing"
)

func TestCost(t *testing.T) {
	p := Price{PerToken: 1000, PromptMul: 5000, CachedMul: 1000, CompletionMul: One}
	c, err := p.Cost(Usage{PromptTokens: 10, CachedTokens: 4, CompletionTokens: 3})
	if err != nil {
		t.Fatal(err)
	}
	// 6 uncached at 500 + 4 cached at 100 = 3400; 3 completion at 1000 = 3000.
	if want := (Cost{Prompt: 3400, Completion: 3000, Total: 6400}); c != want {
		t.Errorf("Cost = %+v, want %+v", c, want)
	}
}

func TestCostRoundsDownPerKind(t *testing.T) {
	p := Price{PerToken: 3, PromptMul: 3333, CompletionMul: 3333}
	c, _ := p.Cost(Usage{PromptTokens: 1, CompletionTokens: 1})
	if c.Total != 0 {
		t.Errorf("sub-nanoTON costs should round down, got %+v", c)
	}
}

func TestCostRefusesNonsense(t *testing.T) {
	if _, err := Default.Cost(Usage{PromptTokens: 1, CachedTokens: 2}); err == nil {
		t.Error("more cached than prompt tokens accepted")
	}
	if _, err := (Price{PerToken: math.MaxUint64, CompletionMul: One}).Cost(Usage{CompletionTokens: 2}); !errors.Is(err, ErrOverflow) {
		t.Errorf("overflow: err = %v", err)
	}
}

func TestWithin(t *testing.T) {
	limit := Price{PerToken: 2000, PromptMul: One, CachedMul: One, CompletionMul: One}
	if !Default.Within(limit) {
		t.Error("default price should be within 2000/token")
	}
	dear := Default
	dear.CompletionMul = 3 * One
	if dear.Within(limit) {
		t.Error("3000/token completion accepted under a 2000 limit")
	}
}

// The worker's share: the root's fee per token when set (never above the
// cost), else the cost less the proxy's fee.
func TestSplitWorkerPay(t *testing.T) {
	p := Price{PerToken: 1000, PromptMul: 5000, CachedMul: 1000, CompletionMul: One}
	u := Usage{PromptTokens: 10, CachedTokens: 4, CompletionTokens: 3}
	c, _ := p.Cost(u) // 6400
	for _, tc := range []struct {
		s    Split
		want uint64
	}{
		{Split{FeeBPS: 1000}, 5760},
		{Split{}, 6400},
		{Split{WorkerFee: 900}, 5760},
		{Split{WorkerFee: 5000, FeeBPS: 1000}, 6400},
		{Split{FeeBPS: 2 * One}, 0},
	} {
		if got := tc.s.WorkerPay(p, u, c.Total); got != tc.want {
			t.Errorf("%+v: WorkerPay = %d, want %d", tc.s, got, tc.want)
		}
	}
}

func TestMaxCost(t *testing.T) {
	p := Price{PerToken: 1000, PromptMul: 5000, CachedMul: 1000, CompletionMul: One}
	if got := p.MaxCost(Usage{PromptTokens: 10, CompletionTokens: 3}); got != 8000 {
		t.Errorf("MaxCost = %d, want 8000 (no prompt token cached)", got)
	}
	if got := (Price{PerToken: math.MaxUint64, PromptMul: One}).MaxCost(Usage{PromptTokens: 2}); got != math.MaxUint64 {
		t.Errorf("overflowing MaxCost = %d", got)
	}
}
