// Package llama runs Llama-architecture language models (Llama, SmolLM,
// Qwen2, Qwen3) from GGUF files on the CPU, in pure Go.
//
// A Model holds the weights, shared read-only; each State is one sequence
// with its own KV cache, fed a prompt in batches and then one token at a time.
package llama

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	"github.com/cocoon-go/cocoon/engine/embedded/gguf"
)

// Config is the shape of a model, read from <arch>.* metadata.
type Config struct {
	Arch          string // general.architecture: "llama", "qwen2" or "qwen3"
	ContextLength int
	Dim           int // embedding_length
	Layers        int // block_count
	FFN           int // feed_forward_length
	Heads         int
	KVHeads       int
	HeadDim       int     // attention.key_length, by default Dim/Heads
	RopeDim       int     // rope.dimension_count: leading dimensions of each head that rotate
	RopeBase      float64 // rope.freq_base
	RopeScale     float64 // linear position scale, 1 unless rope.scaling.type is "linear"
	RopeNeox      bool    // rotate (x[i], x[i+RopeDim/2]) rather than (x[2i], x[2i+1])
	Eps           float32 // attention.layer_norm_rms_epsilon
	Vocab         int     // rows of token_embd
}

// Model is a loaded model. It is safe for concurrent use by many States.
type Model struct {
	Config
	threads   int
	embd      matrix
	layers    []layer
	outNorm   []float32
	output    matrix    // token_embd again when the file ties them
	invFreq   []float64 // per rotated pair: base^(-2i/RopeDim) · scale / rope_freqs[i]
	kvGroup   int       // query heads per key-value head
	attnScale float32
}

type layer struct {
	attnNorm, ffnNorm []float32
	wq, wk, wv, wo    matrix
	bq, bk, bv, bo    []float32 // biases, nil when absent
	qNorm, kNorm      []float32 // per-head RMS norms of Qwen3, nil otherwise
	gate, up, down    matrix
}

// ErrUnsupported is wrapped by Load errors for models this package cannot run.
var ErrUnsupported = errors.New("llama: unsupported model")

// archs lists the supported architectures and the RoPE mode of each.
var archs = map[string]struct{ neox bool }{
	"llama": {false},
	"qwen2": {true},
	"qwen3": {true},
}

// Load reads the model in f. The weights refer to f's tensor data where they
// can, so that data must stay unchanged while the Model is used. threads is
// how many goroutines one matrix product may use; 0 means GOMAXPROCS.
func Load(f *gguf.File, threads int) (*Model, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return nil, fmt.Errorf("llama: %w", err)
	}
	mode, ok := archs[arch]
	if !ok {
		return nil, fmt.Errorf("%w: architecture %q (supported: llama, qwen2, qwen3)", ErrUnsupported, arch)
	}
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	m := &Model{threads: threads}
	c := &m.Config
	c.Arch, c.RopeNeox = arch, mode.neox
	if err := readConfig(f, c); err != nil {
		return nil, err
	}
	if err := m.loadWeights(f); err != nil {
		return nil, err
	}
	m.kvGroup = c.Heads / c.KVHeads
	m.attnScale = float32(1 / math.Sqrt(float64(c.HeadDim)))
	m.invFreq = make([]float64, c.RopeDim/2)
	factors, err := m.ropeFactors(f)
	if err != nil {
		return nil, err
	}
	for i := range m.invFreq {
		m.invFreq[i] = math.Pow(c.RopeBase, -2*float64(i)/float64(c.RopeDim)) * c.RopeScale
		if factors != nil {
			m.invFreq[i] /= float64(factors[i])
		}
	}
	return m, nil
}

func readConfig(f *gguf.File, c *Config) error {
	p := c.Arch + "."
	ints := []struct {
		key string
		dst *int
		def int // -1: required
	}{
		{"context_length", &c.ContextLength, -1},
		{"embedding_length", &c.Dim, -1},
		{"block_count", &c.Layers, -1},
		{"feed_forward_length", &c.FFN, -1},
		{"attention.head_count", &c.Heads, -1},
		{"attention.head_count_kv", &c.KVHeads, 0},
		{"attention.key_length", &c.HeadDim, 0},
		{"rope.dimension_count", &c.RopeDim, 0},
	}
	for _, k := range ints {
		v, err := f.Int(p + k.key)
		switch {
		case errors.Is(err, gguf.ErrKeyNotFound) && k.def >= 0:
			v = int64(k.def)
		case err != nil:
			return fmt.Errorf("llama: %w", err)
		case v <= 0 || v > 1<<24:
			return fmt.Errorf("llama: %s%s = %d is out of range", p, k.key, v)
		}
		*k.dst = int(v)
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 {
		if c.Dim%c.Heads != 0 {
			return fmt.Errorf("llama: embedding length %d is not a multiple of %d heads", c.Dim, c.Heads)
		}
		c.HeadDim = c.Dim / c.Heads
	}
	if v, err := f.Int(p + "attention.value_length"); err == nil && int(v) != c.HeadDim {
		return fmt.Errorf("%w: value length %d differs from key length %d", ErrUnsupported, v, c.HeadDim)
	}
	if c.RopeDim == 0 {
		c.RopeDim = c.HeadDim
	}
	switch {
	case c.Heads%c.KVHeads != 0:
		return fmt.Errorf("llama: %d heads do not divide into %d key-value heads", c.Heads, c.KVHeads)
	case c.RopeDim%2 != 0 || c.RopeDim > c.HeadDim:
		return fmt.Errorf("llama: rope dimension %d must be even and at most the head dimension %d", c.RopeDim, c.HeadDim)
	}
	if n, err := f.Int(p + "expert_count"); err == nil && n > 0 {
		return fmt.Errorf("%w: mixture of %d experts", ErrUnsupported, n)
	}

	eps, err := f.Float(p + "attention.layer_norm_rms_epsilon")
	if err != nil {
		return fmt.Errorf("llama: %w", err)
	}
	c.Eps = float32(eps)
	c.RopeBase = 10000
	if v, err := f.Float(p + "rope.freq_base"); err == nil {
		c.RopeBase = v
	} else if !errors.Is(err, gguf.ErrKeyNotFound) {
		return fmt.Errorf("llama: %w", err)
	}
	c.RopeScale = 1
	scaling, err := f.String(p + "rope.scaling.type")
	if errors.Is(err, gguf.ErrKeyNotFound) {
		scaling = "none"
		if v, err := f.Float(p + "rope.scale_linear"); err == nil && v != 1 {
			scaling = "linear" // the key older converters wrote
		}
	}
	switch scaling {
	case "none":
	case "linear":
		factor, err := f.Float(p + "rope.scaling.factor")
		if errors.Is(err, gguf.ErrKeyNotFound) {
			factor, err = f.Float(p + "rope.scale_linear")
		}
		if err != nil || factor <= 0 {
			return fmt.Errorf("llama: linear rope scaling needs a positive factor: %v", err)
		}
		c.RopeScale = 1 / factor
	default:
		return fmt.Errorf("%w: rope scaling %q", ErrUnsupported, scaling)
	}
	return nil
}

// ropeFactors reads rope_freqs.weight, Llama 3.1's per-frequency divisors.
func (m *Model) ropeFactors(f *gguf.File) ([]float32, error) {
	t, ok := f.Tensor("rope_freqs.weight")
	if !ok {
		return nil, nil
	}
	return m.vector(f, t.Name, m.RopeDim/2, true)
}

// vector reads a 1-dimensional tensor of n elements.
func (m *Model) vector(f *gguf.File, name string, n int, required bool) ([]float32, error) {
	t, ok := f.Tensor(name)
	if !ok {
		if required {
			return nil, fmt.Errorf("llama: missing tensor %s", name)
		}
		return nil, nil
	}
	if len(t.Dims) != 1 || t.Dims[0] != uint64(n) {
		return nil, fmt.Errorf("llama: tensor %s has shape %v, want [%d]", name, t.Dims, n)
	}
	v := make([]float32, n)
	if err := gguf.Dequantize(v, t.Type, t.Data); err != nil {
		return nil, fmt.Errorf("llama: tensor %s: %w", name, err)
	}
	return v, nil
}

func (m *Model) matrix(f *gguf.File, name string, cols, rows int) (matrix, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return matrix{}, fmt.Errorf("llama: missing tensor %s", name)
	}
	return loadMatrix(t, cols, rows)
}

func (m *Model) loadWeights(f *gguf.File) error {
	c := &m.Config
	t, ok := f.Tensor("token_embd.weight")
	if !ok {
		return fmt.Errorf("llama: missing tensor token_embd.weight")
	}
	if len(t.Dims) != 2 || t.Dims[1] == 0 || t.Dims[1] > 1<<24 {
		return fmt.Errorf("llama: tensor token_embd.weight has shape %v, want [%d vocab]", t.Dims, c.Dim)
	}
	c.Vocab = int(t.Dims[1])
	var err error
	if m.embd, err = loadMatrix(t, c.Dim, c.Vocab); err != nil {
		return err
	}
	q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	m.layers = make([]layer, c.Layers)
	for i := range m.layers {
		l := &m.layers[i]
		p := fmt.Sprintf("blk.%d.", i)
		for _, v := range []struct {
			dst      *[]float32
			name     string
			n        int
			required bool
		}{
			{&l.attnNorm, "attn_norm.weight", c.Dim, true},
			{&l.ffnNorm, "ffn_norm.weight", c.Dim, true},
			{&l.bq, "attn_q.bias", q, c.Arch == "qwen2"},
			{&l.bk, "attn_k.bias", kv, c.Arch == "qwen2"},
			{&l.bv, "attn_v.bias", kv, c.Arch == "qwen2"},
			{&l.bo, "attn_output.bias", c.Dim, false},
			{&l.qNorm, "attn_q_norm.weight", c.HeadDim, c.Arch == "qwen3"},
			{&l.kNorm, "attn_k_norm.weight", c.HeadDim, c.Arch == "qwen3"},
		} {
			if *v.dst, err = m.vector(f, p+v.name, v.n, v.required); err != nil {
				return err
			}
		}
		for _, w := range []struct {
			dst        *matrix
			name       string
			cols, rows int
		}{
			{&l.wq, "attn_q.weight", c.Dim, q},
			{&l.wk, "attn_k.weight", c.Dim, kv},
			{&l.wv, "attn_v.weight", c.Dim, kv},
			{&l.wo, "attn_output.weight", q, c.Dim},
			{&l.gate, "ffn_gate.weight", c.Dim, c.FFN},
			{&l.up, "ffn_up.weight", c.Dim, c.FFN},
			{&l.down, "ffn_down.weight", c.FFN, c.Dim},
		} {
			if *w.dst, err = m.matrix(f, p+w.name, w.cols, w.rows); err != nil {
				return err
			}
		}
	}
	if m.outNorm, err = m.vector(f, "output_norm.weight", c.Dim, true); err != nil {
		return err
	}
	if _, ok := f.Tensor("output.weight"); ok {
		m.output, err = m.matrix(f, "output.weight", c.Dim, c.Vocab)
	} else {
		m.output = m.embd // tied embeddings
	}
	return err
}
