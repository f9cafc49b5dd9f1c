package embedded

import (
	"math"
	"math/rand/v2"
	"slices"
)

// sampler picks the next token from logits: the most likely one at
// temperature 0, otherwise a draw from the temperature-scaled distribution cut
// to its top-p nucleus.
type sampler struct {
	temp, topP float64
	rng        *rand.Rand
	probs      []float64
	cand       []int
}

func newSampler(temp, topP float64, seed uint64) *sampler {
	return &sampler{temp: temp, topP: topP, rng: rand.New(rand.NewPCG(seed, 0x636f636f6f6e))}
}

func (s *sampler) sample(logits []float32) int {
	if s.temp == 0 {
		return argmax(logits)
	}
	if cap(s.probs) < len(logits) {
		s.probs = make([]float64, len(logits))
	}
	p := s.probs[:len(logits)]
	top := float64(logits[argmax(logits)])
	var sum float64
	for i, l := range logits {
		p[i] = math.Exp((float64(l) - top) / s.temp)
		sum += p[i]
	}
	if s.topP >= 1 {
		return draw(p, nil, sum*s.rng.Float64())
	}
	// The nucleus is the most likely tokens whose mass reaches topP. Tokens
	// below (1-topP)/n of the mass cannot be in it: all of them together hold
	// less than 1-topP. Dropping them first keeps the sort short.
	cut := (1 - s.topP) / float64(len(p)) * sum
	s.cand = s.cand[:0]
	for i, v := range p {
		if v >= cut {
			s.cand = append(s.cand, i)
		}
	}
	slices.SortStableFunc(s.cand, func(a, b int) int {
		switch {
		case p[a] > p[b]:
			return -1
		case p[a] < p[b]:
			return 1
		}
		return 0
	})
	var mass float64
	for n, i := range s.cand {
		mass += p[i]
		if mass >= s.topP*sum {
			s.cand = s.cand[:n+1]
			break
		}
	}
	return draw(p, s.cand, mass*s.rng.Float64())
}

// draw returns the token at which the running sum of p over cand (all
// tokens when cand is nil) passes r.
func draw(p []float64, cand []int, r float64) int {
	last := 0
	if cand == nil {
		for i, v := range p {
			if r < v {
				return i
			}
			r -= v
			if v > 0 {
				last = i
			}
		}
		return last
	}
	for _, i := range cand {
		if r < p[i] {
			return i
		}
		r -= p[i]
		last = i
	}
	return last // rounding left r just past the end
}

// argmax is the index of the largest logit, the first among equals.
func argmax(logits []float32) int {
	best := 0
	for i, l := range logits {
		if l > logits[best] {
			best = i
		}
	}
	return best
}
