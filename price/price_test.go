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
