package llama

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/cocoon-go/cocoon/engine/embedded/gguf"
	"github.com/cocoon-go/cocoon/engine/embedded/internal/testmodel"
)

func build(t testing.TB, c testmodel.Config) *gguf.File {
	t.Helper()
	b, err := testmodel.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// reference computes the logits after each prefix of tokens the plainest way:
// in float64, every prefix from scratch, with no cache of any kind. It reads
// the weights straight from the file.
type reference struct {
	f                          *gguf.File
	arch                       string
	dim, heads, kvHeads, hd    int
	ropeDim                    int
	base, scale                float64
	factors                    []float64
	eps                        float64
	layers, ffn                int
	neox                       bool
	qkNorm, biases, tiedOutput bool
}

func newReference(t *testing.T, f *gguf.File) *reference {
	r := &reference{f: f}
	r.arch, _ = f.String("general.architecture")
	geti := func(k string) int {
		v, err := f.Int(r.arch + "." + k)
		if err != nil {
			t.Fatal(err)
		}
		return int(v)
	}
	r.dim, r.heads, r.kvHeads = geti("embedding_length"), geti("attention.head_count"), geti("attention.head_count_kv")
	r.layers, r.ffn, r.ropeDim = geti("block_count"), geti("feed_forward_length"), geti("rope.dimension_count")
	r.hd = r.dim / r.heads
	if v, err := f.Int(r.arch + ".attention.key_length"); err == nil {
		r.hd = int(v)
	}
	r.base, _ = f.Float(r.arch + ".rope.freq_base")
	r.eps, _ = f.Float(r.arch + ".attention.layer_norm_rms_epsilon")
	r.scale = 1
	if v, err := f.Float(r.arch + ".rope.scaling.factor"); err == nil {
		r.scale = v
	}
	if _, ok := f.Tensor("rope_freqs.weight"); ok {
		r.factors = r.tensor("rope_freqs.weight")
	}
	r.neox = r.arch != "llama"
	return r
}

func (r *reference) tensor(name string) []float64 {
	t, ok := r.f.Tensor(name)
	if !ok {
		return nil
	}
	v := make([]float32, t.Elements())
	if err := gguf.Dequantize(v, t.Type, t.Data); err != nil {
		panic(err)
	}
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// mul returns W·x for W with dims [len(x), rows]: y[o] = Σ_i W[o*in+i]·x[i].
func mul(w, x []float64) []float64 {
	in := len(x)
	y := make([]float64, len(w)/in)
	for o := range y {
		for i := range in {
			y[o] += w[o*in+i] * x[i]
		}
	}
	return y
}

func norm(x, w []float64, eps float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	out := make([]float64, len(x))
	for i := range x {
		out[i] = x[i] / math.Sqrt(ss/float64(len(x))+eps) * w[i]
	}
	return out
}

func (r *reference) rope(v []float64, pos int) {
	for i := range r.ropeDim / 2 {
		theta := float64(pos) * math.Pow(r.base, -2*float64(i)/float64(r.ropeDim)) / r.scale
		if r.factors != nil {
			theta /= r.factors[i]
		}
		a, b := 2*i, 2*i+1
		if r.neox {
			a, b = i, i+r.ropeDim/2
		}
		x0, x1 := v[a], v[b]
		v[a] = x0*math.Cos(theta) - x1*math.Sin(theta)
		v[b] = x0*math.Sin(theta) + x1*math.Cos(theta)
	}
}

func plus(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i]
		if b != nil {
			out[i] += b[i]
		}
	}
	return out
}

// logits runs the whole prefix and returns the logits at its last position.
func (r *reference) logits(tokens []int) []float64 {
	embd := r.tensor("token_embd.weight")
	xs := make([][]float64, len(tokens))
	for t, tok := range tokens {
		xs[t] = append([]float64(nil), embd[tok*r.dim:(tok+1)*r.dim]...)
	}
	for l := range r.layers {
		p := fmt.Sprintf("blk.%d.", l)
		w := func(n string) []float64 { return r.tensor(p + n) }
		qs, ks, vs := make([][]float64, len(xs)), make([][]float64, len(xs)), make([][]float64, len(xs))
		for t, x := range xs {
			n := norm(x, w("attn_norm.weight"), r.eps)
			qs[t] = plus(mul(w("attn_q.weight"), n), w("attn_q.bias"))
			ks[t] = plus(mul(w("attn_k.weight"), n), w("attn_k.bias"))
			vs[t] = plus(mul(w("attn_v.weight"), n), w("attn_v.bias"))
			for h := range r.heads {
				q := qs[t][h*r.hd : (h+1)*r.hd]
				if qn := w("attn_q_norm.weight"); qn != nil {
					copy(q, norm(q, qn, r.eps))
				}
				r.rope(q, t)
			}
			for h := range r.kvHeads {
				k := ks[t][h*r.hd : (h+1)*r.hd]
				if kn := w("attn_k_norm.weight"); kn != nil {
					copy(k, norm(k, kn, r.eps))
				}
				r.rope(k, t)
			}
		}
		for t := range xs {
			att := make([]float64, r.heads*r.hd)
			for h := range r.heads {
				kh := h / (r.heads / r.kvHeads)
				scores := make([]float64, t+1)
				var total float64
				for u := range t + 1 {
					var s float64
					for i := range r.hd {
						s += qs[t][h*r.hd+i] * ks[u][kh*r.hd+i]
					}
					scores[u] = math.Exp(s / math.Sqrt(float64(r.hd)))
					total += scores[u]
				}
				for u := range t + 1 {
					for i := range r.hd {
						att[h*r.hd+i] += scores[u] / total * vs[u][kh*r.hd+i]
					}
				}
			}
			hdn := plus(xs[t], mul(w("attn_output.weight"), att))
			n := norm(hdn, w("ffn_norm.weight"), r.eps)
			g, u := mul(w("ffn_gate.weight"), n), mul(w("ffn_up.weight"), n)
			for i := range g {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			xs[t] = plus(hdn, mul(w("ffn_down.weight"), g))
		}
	}
	out := r.tensor("output.weight")
	if out == nil {
		out = embd
	}
	return mul(out, norm(xs[len(xs)-1], r.tensor("output_norm.weight"), r.eps))
}

var prompt = []int{5, 300, 17, 42, 255, 0, 99, 7}

// TestForwardMatchesReference decodes with the KV cache and compares every
// position's logits with the reference's full recomputation.
func TestForwardMatchesReference(t *testing.T) {
	for _, tc := range []testmodel.Config{
		{Arch: "llama", Type: gguf.F32},
		{Arch: "llama", Type: gguf.F16, Tied: true},
		{Arch: "llama", Type: gguf.Q8_0},
		{Arch: "llama", Type: gguf.Q4_0, Tied: true},
		{Arch: "llama", Type: gguf.BF16, KVHeads: 4},
		{Arch: "qwen2", Type: gguf.F32, Tied: true},
		{Arch: "qwen2", Type: gguf.Q8_0, KVHeads: 1},
		{Arch: "qwen3", Type: gguf.F32, HeadDim: 32},
		// Partial rotation, linear scaling and Llama 3.1 frequency factors.
		{Arch: "llama", Type: gguf.F32, RopeFreqs: []float32{1, 2, 4, 8}, KV: map[string]any{
			"llama.rope.dimension_count": uint32(8), "llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": float32(2)}},
	} {
		name := fmt.Sprintf("%s-%s-tied=%v-kv=%d-hd=%d", tc.Arch, tc.Type, tc.Tied, tc.KVHeads, tc.HeadDim)
		t.Run(name, func(t *testing.T) {
			f := build(t, tc)
			m, err := Load(f, 2)
			if err != nil {
				t.Fatal(err)
			}
			ref := newReference(t, f)
			s := m.NewState()
			for p, tok := range prompt {
				got, err := s.Forward(tok, true)
				if err != nil {
					t.Fatal(err)
				}
				want := ref.logits(prompt[:p+1])
				if len(got) != len(want) {
					t.Fatalf("%d logits, want %d", len(got), len(want))
				}
				for i := range want {
					if d := math.Abs(float64(got[i]) - want[i]); d > 1e-4*max(1, math.Abs(want[i])) {
						t.Fatalf("position %d logit %d = %v, want %v", p, i, got[i], want[i])
					}
				}
			}
		})
	}
}

// TestCacheEqualsRecompute checks that incremental decoding gives exactly the
// logits of prefilling the whole prefix, in batches, into a fresh State,
// whatever the number of threads.
func TestCacheEqualsRecompute(t *testing.T) {
	f := build(t, testmodel.Config{Type: gguf.Q8_0, Context: 256})
	long := make([]int, 150)
	for i := range long {
		long[i] = (i*37 + 11) % 300
	}
	m1, _ := Load(f, 1)
	m4, _ := Load(f, 4)
	s := m4.NewState()
	for p, tok := range long {
		got, _ := s.Forward(tok, true)
		if p%49 != 0 && p != len(long)-1 {
			continue
		}
		want, err := m1.NewState().Prefill(long[:p+1])
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("position %d logit %d: cached %v, fresh %v", p, i, got[i], want[i])
			}
		}
	}
	if s.Pos() != len(long) {
		t.Errorf("Pos = %d", s.Pos())
	}
}

func TestPrefill(t *testing.T) {
	f := build(t, testmodel.Config{Arch: "qwen2", Type: gguf.F16, Context: 64})
	m, _ := Load(f, 2)
	toks := make([]int, 40) // three batches, the last one partial
	for i := range toks {
		toks[i] = (i * 13) % 300
	}
	s := m.NewState()
	var want []float32
	for _, tok := range toks {
		want, _ = s.Forward(tok, true)
	}
	s2 := m.NewState()
	s2.Forward(toks[0], false)
	got, err := s2.Prefill(toks[1:])
	if err != nil || s2.Pos() != len(toks) {
		t.Fatalf("Prefill: %v at position %d", err, s2.Pos())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("logit %d: prefilled %v, fed one by one %v", i, got[i], want[i])
		}
	}
	if _, err := s2.Prefill(make([]int, 25)); err == nil {
		t.Error("prefilled past the context")
	}
	if _, err := m.NewState().Prefill([]int{1, -1}); err == nil {
		t.Error("prefilled a negative token")
	}
}

func TestForwardLimits(t *testing.T) {
	m, err := Load(build(t, testmodel.Config{Context: 4}), 0)
	if err != nil {
		t.Fatal(err)
	}
	s := m.NewState()
	if _, err := s.Forward(m.Vocab, true); err == nil {
		t.Error("token past the vocabulary accepted")
	}
	for range 4 {
		if _, err := s.Forward(1, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Forward(1, true); err == nil || !strings.Contains(err.Error(), "context length 4") {
		t.Errorf("past the context: %v", err)
	}
}

func TestLoadRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		c    testmodel.Config
		want string
	}{
		"arch":       {testmodel.Config{Arch: "llama", KV: map[string]any{"general.architecture": "gpt2"}}, `architecture "gpt2"`},
		"no layers":  {testmodel.Config{KV: map[string]any{"llama.block_count": nil}}, "llama.block_count"},
		"no eps":     {testmodel.Config{KV: map[string]any{"llama.attention.layer_norm_rms_epsilon": nil}}, "layer_norm_rms_epsilon"},
		"heads":      {testmodel.Config{KV: map[string]any{"llama.attention.head_count_kv": uint32(3)}}, "key-value heads"},
		"yarn":       {testmodel.Config{KV: map[string]any{"llama.rope.scaling.type": "yarn"}}, `rope scaling "yarn"`},
		"experts":    {testmodel.Config{KV: map[string]any{"llama.expert_count": uint32(8)}}, "experts"},
		"shape":      {testmodel.Config{KV: map[string]any{"llama.feed_forward_length": uint32(64)}}, "ffn_gate.weight has shape"},
		"qwen2 bias": {testmodel.Config{Arch: "qwen3", KV: map[string]any{"general.architecture": "qwen2", "qwen2.block_count": uint32(1), "qwen2.context_length": uint32(8), "qwen2.embedding_length": uint32(64), "qwen2.feed_forward_length": uint32(96), "qwen2.attention.head_count": uint32(4), "qwen2.attention.layer_norm_rms_epsilon": float32(1e-5)}}, "attn_q.bias"},
	} {
		_, err := Load(build(t, tc.c), 1)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, tc.want)
		}
	}
	// A quantization this package does not run is named.
	var w gguf.Writer
	f := build(t, testmodel.Config{})
	for _, kv := range f.KV {
		w.AddKV(kv.Key, kv.Value)
	}
	for _, tn := range f.Tensors {
		if tn.Name == "blk.0.ffn_down.weight" {
			w.AddTensor(tn.Name, gguf.Q4_K, []uint64{256, 64}, make([]byte, 144*64))
			continue
		}
		w.AddTensor(tn.Name, tn.Type, tn.Dims, tn.Data)
	}
	b, _ := w.Bytes()
	f, err := gguf.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(f, 1); err == nil || !strings.Contains(err.Error(), "Q4_K") {
		t.Errorf("Q4_K: %v", err)
	}
	f = build(t, testmodel.Config{KV: map[string]any{"general.architecture": "falcon"}})
	if _, err := Load(f, 1); !errors.Is(err, ErrUnsupported) {
		t.Errorf("falcon: %v does not wrap ErrUnsupported", err)
	}
}

// BenchmarkForward decodes one token at a time on a 256-dimension, 6-layer
// model, for each weight format.
func BenchmarkForward(b *testing.B) {
	for _, typ := range []gguf.TensorType{gguf.F32, gguf.Q8_0} {
		b.Run(typ.String(), func(b *testing.B) {
			f := build(b, testmodel.Config{Dim: 256, Layers: 6, Heads: 8, KVHeads: 4, FFN: 768, Context: 1024, Type: typ})
			m, err := Load(f, 0)
			if err != nil {
				b.Fatal(err)
			}
			s := m.NewState()
			for b.Loop() {
				if s.Pos() == m.ContextLength {
					s = m.NewState()
				}
				s.Forward(3, true)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}

// BenchmarkPrefill feeds a 64-token prompt in batches, the way the engine
// does, on a 256-dimension, 6-layer model.
func BenchmarkPrefill(b *testing.B) {
	f := build(b, testmodel.Config{Dim: 256, Layers: 6, Heads: 8, KVHeads: 4, FFN: 768, Context: 1024, Type: gguf.F32})
	m, err := Load(f, 0)
	if err != nil {
		b.Fatal(err)
	}
	toks := make([]int, 64)
	for b.Loop() {
		if _, err := m.NewState().Prefill(toks); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(toks))/b.Elapsed().Seconds(), "tok/s")
}
