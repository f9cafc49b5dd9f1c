// Package price turns token counts into integer nanoTON costs.
//
// A Price is a base per-token price with per-kind multipliers, as in the root
// parameters of Telegram's COCOON: a multiplier of 10000 means 1×, so a
// prompt multiplier of 5000 makes prompt tokens half as dear as the base price.
// All arithmetic is on integers; nothing here ever touches a float.
package price

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// One is the multiplier that leaves the base price unchanged.
const One = 10000

// Price is what one worker charges, in nanoTON per token.
type Price struct {
	PerToken      uint64 `json:"per_token"`      // base price, nanoTON per token
	PromptMul     uint64 `json:"prompt_mul"`     // multiplier for prompt tokens, One = 1×
	CachedMul     uint64 `json:"cached_mul"`     // multiplier for cached prompt tokens
	CompletionMul uint64 `json:"completion_mul"` // multiplier for completion tokens
}

// Usage counts the tokens of one answer. CachedTokens is the part of
// PromptTokens that the engine served from a prefix cache.
type Usage struct {
	PromptTokens     uint64 `json:"prompt_tokens"`
	CachedTokens     uint64 `json:"cached_tokens"`
	CompletionTokens uint64 `json:"completion_tokens"`
}

// Cost is what one answer costs, in nanoTON.
type Cost struct {
	Prompt     uint64 `json:"prompt_total_cost"`
	Completion uint64 `json:"completion_total_cost"`
	Total      uint64 `json:"total_cost"`
}

// ErrOverflow reports a cost that does not fit in 64 bits.
var ErrOverflow = errors.New("price: cost overflows uint64")

// Default is the price `cocoon up` uses: 1000 nanoTON per token, prompt
// tokens at half price, cached tokens at a tenth, completion tokens at full.
var Default = Price{PerToken: 1000, PromptMul: 5000, CachedMul: 1000, CompletionMul: One}

// Validate reports whether p is usable.
func (p Price) Validate() error {
	if p.PromptMul == 0 && p.CompletionMul == 0 && p.PerToken != 0 {
		return fmt.Errorf("price: all multipliers are zero")
	}
	return nil
}

// Within reports whether p costs no more than limit for every kind of token.
// A client sends its limit with each request; a worker dearer than it is not used.
func (p Price) Within(limit Price) bool {
	return p.unit(p.PromptMul) <= limit.unit(limit.PromptMul) &&
		p.unit(p.CachedMul) <= limit.unit(limit.CachedMul) &&
		p.unit(p.CompletionMul) <= limit.unit(limit.CompletionMul)
}

// unit is the price of one token of a kind, scaled by One to stay integral.
func (p Price) unit(mul uint64) uint64 {
	hi, lo := bits.Mul64(p.PerToken, mul)
	if hi != 0 {
		return ^uint64(0)
	}
	return lo
}

// Cost computes what u costs at p. Uncached prompt tokens, cached tokens and
// completion tokens are each rounded down to whole nanoTON.
func (p Price) Cost(u Usage) (Cost, error) {
	if u.CachedTokens > u.PromptTokens {
		return Cost{}, fmt.Errorf("price: %d cached tokens exceed %d prompt tokens", u.CachedTokens, u.PromptTokens)
	}
	uncached, err := mulDiv(u.PromptTokens-u.CachedTokens, p.PerToken, p.PromptMul)
	if err != nil {
		return Cost{}, err
	}
	cached, err := mulDiv(u.CachedTokens, p.PerToken, p.CachedMul)
	if err != nil {
		return Cost{}, err
	}
	completion, err := mulDiv(u.CompletionTokens, p.PerToken, p.CompletionMul)
	if err != nil {
		return Cost{}, err
	}
	c := Cost{Prompt: uncached + cached, Completion: completion}
	if c.Prompt < uncached {
		return Cost{}, ErrOverflow
	}
	c.Total = c.Prompt + c.Completion
	if c.Total < c.Prompt {
		return Cost{}, ErrOverflow
	}
	return c, nil
}

// mulDiv returns tokens*perToken*mul/One without intermediate overflow.
func mulDiv(tokens, perToken, mul uint64) (uint64, error) {
	hi, lo := bits.Mul64(tokens, perToken)
	if hi != 0 {
		return 0, ErrOverflow
	}
	hi, lo = bits.Mul64(lo, mul)
	if hi >= One {
		return 0, ErrOverflow
	}
	q, _ := bits.Div64(hi, lo, One)
	return q, nil
}

// MaxCost is the most an answer with usage u may cost at p, whichever part
// of its prompt tokens was cached: all or none, the two ends of a cost that
// is linear in the cached count. It is math.MaxUint64 if that overflows. A
// payee holds it against the payer's credit while a request is in flight.
func (p Price) MaxCost(u Usage) uint64 {
	u.CachedTokens = u.PromptTokens
	cached, err1 := p.Cost(u)
	u.CachedTokens = 0
	uncached, err2 := p.Cost(u)
	if err1 != nil || err2 != nil {
		return math.MaxUint64
	}
	return max(cached.Total, uncached.Total)
}

// Split is how a proxy divides what a client pays for an answer between
// itself and the worker that served it. The proxy pays a worker by it and
// the worker books what it is owed by it, so both call Split.WorkerPay.
type Split struct {
	// WorkerFee is what a worker earns per token, in nanoTON, with the
	// answer's prompt/cached/completion multipliers: the root contract's
	// worker_fee. 0: the cost less FeeBPS.
	WorkerFee uint64 `json:"worker_fee"`
	// FeeBPS is the proxy's share of the cost, in 1/10000 (at most One),
	// when WorkerFee is 0.
	FeeBPS uint64 `json:"fee_bps"`
}

// WorkerPay is the worker's share of an answer with usage u at price p,
// which costs the client cost nanoTON: WorkerFee per token, never more than
// cost, or cost less FeeBPS of it (rounded in the proxy's favour by at most
// one nanoTON).
func (s Split) WorkerPay(p Price, u Usage, cost uint64) uint64 {
	if s.WorkerFee > 0 {
		p.PerToken = s.WorkerFee
		if c, err := p.Cost(u); err == nil {
			return min(c.Total, cost)
		}
	}
	bps := min(s.FeeBPS, One)
	fee := cost/One*bps + cost%One*bps/One
	return cost - fee
}
