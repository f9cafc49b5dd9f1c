package llama

import (
	"fmt"
	"math"
	"sync"
)

// State is one sequence being decoded: its position and KV cache. A State is
// used by one goroutine at a time; States of one Model run concurrently.
type State struct {
	m   *Model
	pos int
	// Per layer, the keys and values of every position so far, each position
	// KVHeads·HeadDim floats. They grow as the sequence does.
	keys, values [][]float32

	x, xn, q, k, v, att, ffnA, ffnB, logits []float32
	cos, sin                                []float32
	scores                                  [][]float32 // per head, attention weights
}

// NewState starts an empty sequence.
func (m *Model) NewState() *State {
	c := &m.Config
	kv := c.KVHeads * c.HeadDim
	s := &State{
		m:      m,
		keys:   make([][]float32, c.Layers),
		values: make([][]float32, c.Layers),
		x:      make([]float32, c.Dim),
		xn:     make([]float32, max(c.Dim, c.Heads*c.HeadDim)),
		q:      make([]float32, c.Heads*c.HeadDim),
		k:      make([]float32, kv),
		v:      make([]float32, kv),
		att:    make([]float32, c.Heads*c.HeadDim),
		ffnA:   make([]float32, c.FFN),
		ffnB:   make([]float32, c.FFN),
		logits: make([]float32, c.Vocab),
		cos:    make([]float32, c.RopeDim/2),
		sin:    make([]float32, c.RopeDim/2),
		scores: make([][]float32, c.Heads),
	}
	return s
}

// Pos is the number of tokens fed so far.
func (s *State) Pos() int { return s.pos }

// Forward feeds token at the next position. With wantLogits it returns the
// logits for the token after it (valid until the next call); prompt tokens
// but the last can skip that, the largest product of a small model.
func (s *State) Forward(token int, wantLogits bool) ([]float32, error) {
	m, c := s.m, &s.m.Config
	if token < 0 || token >= c.Vocab {
		return nil, fmt.Errorf("llama: token %d is outside the vocabulary of %d", token, c.Vocab)
	}
	if s.pos >= c.ContextLength {
		return nil, fmt.Errorf("llama: position %d is past the context length %d", s.pos, c.ContextLength)
	}
	m.embd.row(token, s.x)
	s.ropeAngles()
	for i := range m.layers {
		s.layer(i)
	}
	s.pos++
	if !wantLogits {
		return nil, nil
	}
	rmsNorm(s.xn[:c.Dim], s.x, m.outNorm, c.Eps)
	mulAll(m.threads, matvec{&m.output, s.logits, s.xn[:c.Dim]})
	return s.logits, nil
}

func (s *State) layer(i int) {
	m, c, l := s.m, &s.m.Config, &s.m.layers[i]
	kvDim := c.KVHeads * c.HeadDim

	// Attention.
	xn := s.xn[:c.Dim]
	rmsNorm(xn, s.x, l.attnNorm, c.Eps)
	mulAll(m.threads, matvec{&l.wq, s.q, xn}, matvec{&l.wk, s.k, xn}, matvec{&l.wv, s.v, xn})
	addBias(s.q, l.bq)
	addBias(s.k, l.bk)
	addBias(s.v, l.bv)
	for h := range c.Heads {
		q := s.q[h*c.HeadDim : (h+1)*c.HeadDim]
		if l.qNorm != nil {
			rmsNorm(q, q, l.qNorm, c.Eps)
		}
		s.rope(q)
	}
	for h := range c.KVHeads {
		k := s.k[h*c.HeadDim : (h+1)*c.HeadDim]
		if l.kNorm != nil {
			rmsNorm(k, k, l.kNorm, c.Eps)
		}
		s.rope(k)
	}
	s.keys[i] = append(s.keys[i], s.k...)
	s.values[i] = append(s.values[i], s.v...)
	keys, values := s.keys[i][:(s.pos+1)*kvDim], s.values[i][:(s.pos+1)*kvDim]

	attend := func(lo, hi int) {
		for h := lo; h < hi; h++ {
			s.attendHead(h, keys, values)
		}
	}
	if work := c.Heads * (s.pos + 1) * c.HeadDim; m.threads > 1 && work >= minParallelWork {
		parallel(m.threads, c.Heads, attend)
	} else {
		attend(0, c.Heads)
	}
	mulAll(m.threads, matvec{&l.wo, xn, s.att})
	addBias(xn, l.bo)
	for j := range s.x {
		s.x[j] += xn[j]
	}

	// Feed-forward: down(silu(gate·n) ⊙ up·n).
	rmsNorm(xn, s.x, l.ffnNorm, c.Eps)
	mulAll(m.threads, matvec{&l.gate, s.ffnA, xn}, matvec{&l.up, s.ffnB, xn})
	for j, g := range s.ffnA {
		s.ffnA[j] = g / (1 + float32(math.Exp(float64(-g)))) * s.ffnB[j]
	}
	mulAll(m.threads, matvec{&l.down, xn, s.ffnA})
	for j := range s.x {
		s.x[j] += xn[j]
	}
}

// attendHead writes head h's attention output over all positions so far.
func (s *State) attendHead(h int, keys, values []float32) {
	c := &s.m.Config
	hd, kvDim := c.HeadDim, c.KVHeads*c.HeadDim
	off := h / s.m.kvGroup * hd
	q := s.q[h*hd : (h+1)*hd]
	n := s.pos + 1
	if cap(s.scores[h]) < n {
		s.scores[h] = make([]float32, n, max(2*n, 64))
	}
	w := s.scores[h][:n]
	maxScore := float32(math.Inf(-1))
	for t := range n {
		w[t] = dot(q, keys[t*kvDim+off:t*kvDim+off+hd]) * s.m.attnScale
		maxScore = max(maxScore, w[t])
	}
	var sum float32
	for t := range w {
		w[t] = float32(math.Exp(float64(w[t] - maxScore)))
		sum += w[t]
	}
	out := s.att[h*hd : (h+1)*hd]
	clear(out)
	for t, a := range w {
		axpy(out, a/sum, values[t*kvDim+off:t*kvDim+off+hd])
	}
}

// ropeAngles computes the rotation of each pair at the current position.
func (s *State) ropeAngles() {
	for i, f := range s.m.invFreq {
		sin, cos := math.Sincos(float64(s.pos) * f)
		s.cos[i], s.sin[i] = float32(cos), float32(sin)
	}
}

// rope rotates one head's vector in place by the current position.
func (s *State) rope(v []float32) {
	half := len(s.cos)
	if s.m.RopeNeox {
		a, b := v[:half], v[half:2*half]
		for i := range half {
			x0, x1 := a[i], b[i]
			a[i] = x0*s.cos[i] - x1*s.sin[i]
			b[i] = x0*s.sin[i] + x1*s.cos[i]
		}
		return
	}
	for i := range half {
		x0, x1 := v[2*i], v[2*i+1]
		v[2*i] = x0*s.cos[i] - x1*s.sin[i]
		v[2*i+1] = x0*s.sin[i] + x1*s.cos[i]
	}
}

// rmsNorm sets dst = x / sqrt(mean(x²) + eps) · w. dst may be x.
func rmsNorm(dst, x, w []float32, eps float32) {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	scale := float32(1 / math.Sqrt(ss/float64(len(x))+float64(eps)))
	for i, v := range x {
		dst[i] = v * scale * w[i]
	}
}

func addBias(v, b []float32) {
	for i := range b {
		v[i] += b[i]
	}
}

// axpy sets y += a·x.
func axpy(y []float32, a float32, x []float32) {
	x = x[:len(y)]
	for i := range y {
		y[i] += a * x[i]
	}
}

// parallel runs fn over [0, n) split into up to threads ranges.
func parallel(threads, n int, fn func(lo, hi int)) {
	threads = min(threads, n)
	var wg sync.WaitGroup
	for k := 1; k < threads; k++ {
		wg.Go(func() { fn(k*n/threads, (k+1)*n/threads) })
	}
	fn(0, n/threads)
	wg.Wait()
}
