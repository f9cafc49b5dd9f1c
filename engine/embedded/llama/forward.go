package llama

import (
	"fmt"
	"math"
	"sync"
)

// maxBatch is how many prompt tokens go through the layers together: each
// weight row is read once for all of them while it is in cache.
const maxBatch = 16

// State is one sequence being decoded: its position and KV cache. A State is
// used by one goroutine at a time; States of one Model run concurrently.
type State struct {
	m   *Model
	pos int
	// Per layer, the keys and values of every position so far, each position
	// KVHeads·HeadDim floats. They grow as the sequence does.
	keys, values [][]float32

	batch  []*slot // one per token of the batch being fed
	logits []float32
}

// slot holds the activations of one token in a batch.
type slot struct {
	pos                             int
	x, xn, q, k, v, att, ffnA, ffnB []float32
	cos, sin                        []float32
	scores                          [][]float32 // per head, attention weights
}

// NewState starts an empty sequence.
func (m *Model) NewState() *State {
	return &State{
		m:      m,
		keys:   make([][]float32, m.Layers),
		values: make([][]float32, m.Layers),
		logits: make([]float32, m.Vocab),
	}
}

func (m *Model) newSlot() *slot {
	c := &m.Config
	kv := c.KVHeads * c.HeadDim
	return &slot{
		x:      make([]float32, c.Dim),
		xn:     make([]float32, max(c.Dim, c.Heads*c.HeadDim)),
		q:      make([]float32, c.Heads*c.HeadDim),
		k:      make([]float32, kv),
		v:      make([]float32, kv),
		att:    make([]float32, c.Heads*c.HeadDim),
		ffnA:   make([]float32, c.FFN),
		ffnB:   make([]float32, c.FFN),
		cos:    make([]float32, c.RopeDim/2),
		sin:    make([]float32, c.RopeDim/2),
		scores: make([][]float32, c.Heads),
	}
}

// Pos is the number of tokens fed so far.
func (s *State) Pos() int { return s.pos }

// Forward feeds token at the next position. With wantLogits it returns the
// logits for the token after it (valid until the next call); prompt tokens
// but the last can skip that, the largest product of a small model.
func (s *State) Forward(token int, wantLogits bool) ([]float32, error) {
	return s.feed([]int{token}, wantLogits)
}

// Prefill feeds tokens at the next positions, several at a time, and
// returns the logits after the last one (valid until the next call). It
// computes exactly what Forward would, token by token.
func (s *State) Prefill(tokens []int) ([]float32, error) {
	if s.pos+len(tokens) > s.m.ContextLength {
		return nil, fmt.Errorf("llama: %d tokens at position %d run past the context length %d", len(tokens), s.pos, s.m.ContextLength)
	}
	var logits []float32
	for len(tokens) > 0 {
		n := min(len(tokens), maxBatch)
		var err error
		if logits, err = s.feed(tokens[:n], n == len(tokens)); err != nil {
			return nil, err
		}
		tokens = tokens[n:]
	}
	return logits, nil
}

// feed runs up to maxBatch tokens through the model.
func (s *State) feed(tokens []int, wantLogits bool) ([]float32, error) {
	m, c := s.m, &s.m.Config
	for _, tok := range tokens {
		if tok < 0 || tok >= c.Vocab {
			return nil, fmt.Errorf("llama: token %d is outside the vocabulary of %d", tok, c.Vocab)
		}
	}
	if s.pos+len(tokens) > c.ContextLength {
		return nil, fmt.Errorf("llama: %d tokens at position %d run past the context length %d", len(tokens), s.pos, c.ContextLength)
	}
	for len(s.batch) < len(tokens) {
		s.batch = append(s.batch, m.newSlot())
	}
	batch := s.batch[:len(tokens)]
	for b, sl := range batch {
		sl.pos = s.pos + b
		m.embd.row(tokens[b], sl.x)
		m.ropeAngles(sl)
	}
	for i := range m.layers {
		s.layer(i, batch)
	}
	s.pos += len(tokens)
	if !wantLogits {
		return nil, nil
	}
	last := batch[len(batch)-1]
	rmsNorm(last.xn[:c.Dim], last.x, m.outNorm, c.Eps)
	mulAll(m.threads, matvec{&m.output, [][]float32{s.logits}, [][]float32{last.xn[:c.Dim]}})
	return s.logits, nil
}

// gather returns field(slot) for each slot of a batch.
func gather(batch []*slot, field func(*slot) []float32) [][]float32 {
	out := make([][]float32, len(batch))
	for b, sl := range batch {
		out[b] = field(sl)
	}
	return out
}

func (s *State) layer(i int, batch []*slot) {
	m, c, l := s.m, &s.m.Config, &s.m.layers[i]
	kvDim := c.KVHeads * c.HeadDim
	xn := gather(batch, func(sl *slot) []float32 { return sl.xn[:c.Dim] })

	// Attention.
	for _, sl := range batch {
		rmsNorm(sl.xn[:c.Dim], sl.x, l.attnNorm, c.Eps)
	}
	mulAll(m.threads,
		matvec{&l.wq, gather(batch, func(sl *slot) []float32 { return sl.q }), xn},
		matvec{&l.wk, gather(batch, func(sl *slot) []float32 { return sl.k }), xn},
		matvec{&l.wv, gather(batch, func(sl *slot) []float32 { return sl.v }), xn})
	for _, sl := range batch {
		addBias(sl.q, l.bq)
		addBias(sl.k, l.bk)
		addBias(sl.v, l.bv)
		for h := range c.Heads {
			q := sl.q[h*c.HeadDim : (h+1)*c.HeadDim]
			if l.qNorm != nil {
				rmsNorm(q, q, l.qNorm, c.Eps)
			}
			rope(q, sl, c.RopeNeox)
		}
		for h := range c.KVHeads {
			k := sl.k[h*c.HeadDim : (h+1)*c.HeadDim]
			if l.kNorm != nil {
				rmsNorm(k, k, l.kNorm, c.Eps)
			}
			rope(k, sl, c.RopeNeox)
		}
		s.keys[i] = append(s.keys[i], sl.k...)
		s.values[i] = append(s.values[i], sl.v...)
	}
	end := batch[len(batch)-1].pos + 1
	keys, values := s.keys[i][:end*kvDim], s.values[i][:end*kvDim]
	attend := func(lo, hi int) { // over (token, head) pairs
		for j := lo; j < hi; j++ {
			m.attendHead(batch[j/c.Heads], j%c.Heads, keys, values)
		}
	}
	if work := len(batch) * c.Heads * end * c.HeadDim; m.threads > 1 && work >= minParallelWork {
		parallel(m.threads, len(batch)*c.Heads, attend)
	} else {
		attend(0, len(batch)*c.Heads)
	}
	mulAll(m.threads, matvec{&l.wo, xn, gather(batch, func(sl *slot) []float32 { return sl.att })})
	for _, sl := range batch {
		addBias(sl.xn[:c.Dim], l.bo)
		add(sl.x, sl.xn)
		rmsNorm(sl.xn[:c.Dim], sl.x, l.ffnNorm, c.Eps)
	}

	// Feed-forward: down(silu(gate·n) ⊙ up·n).
	ffnA := gather(batch, func(sl *slot) []float32 { return sl.ffnA })
	mulAll(m.threads, matvec{&l.gate, ffnA, xn}, matvec{&l.up, gather(batch, func(sl *slot) []float32 { return sl.ffnB }), xn})
	for _, sl := range batch {
		for j, g := range sl.ffnA {
			sl.ffnA[j] = g / (1 + float32(math.Exp(float64(-g)))) * sl.ffnB[j]
		}
	}
	mulAll(m.threads, matvec{&l.down, xn, ffnA})
	for _, sl := range batch {
		add(sl.x, sl.xn)
	}
}

// attendHead writes head h's attention output for sl over the positions up
// to and including its own.
func (m *Model) attendHead(sl *slot, h int, keys, values []float32) {
	hd, kvDim := m.HeadDim, m.KVHeads*m.HeadDim
	off := h / m.kvGroup * hd
	q := sl.q[h*hd : (h+1)*hd]
	n := sl.pos + 1
	if cap(sl.scores[h]) < n {
		sl.scores[h] = make([]float32, n, max(2*n, 64))
	}
	w := sl.scores[h][:n]
	maxScore := float32(math.Inf(-1))
	for t := range n {
		w[t] = dot(q, keys[t*kvDim+off:t*kvDim+off+hd]) * m.attnScale
		maxScore = max(maxScore, w[t])
	}
	var sum float32
	for t := range w {
		w[t] = float32(math.Exp(float64(w[t] - maxScore)))
		sum += w[t]
	}
	out := sl.att[h*hd : (h+1)*hd]
	clear(out)
	for t, a := range w {
		axpy(out, a/sum, values[t*kvDim+off:t*kvDim+off+hd])
	}
}

// ropeAngles computes the rotation of each pair at sl's position.
func (m *Model) ropeAngles(sl *slot) {
	for i, f := range m.invFreq {
		sin, cos := math.Sincos(float64(sl.pos) * f)
		sl.cos[i], sl.sin[i] = float32(cos), float32(sin)
	}
}

// rope rotates one head's vector in place by sl's position: the pairs
// (v[i], v[i+half]) in NeoX mode, (v[2i], v[2i+1]) otherwise.
func rope(v []float32, sl *slot, neox bool) {
	half := len(sl.cos)
	if neox {
		a, b := v[:half], v[half:2*half]
		for i := range half {
			x0, x1 := a[i], b[i]
			a[i] = x0*sl.cos[i] - x1*sl.sin[i]
			b[i] = x0*sl.sin[i] + x1*sl.cos[i]
		}
		return
	}
	for i := range half {
		x0, x1 := v[2*i], v[2*i+1]
		v[2*i] = x0*sl.cos[i] - x1*sl.sin[i]
		v[2*i+1] = x0*sl.sin[i] + x1*sl.cos[i]
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

// add sets x += y over the length of x.
func add(x, y []float32) {
	y = y[:len(x)]
	for i := range x {
		x[i] += y[i]
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
