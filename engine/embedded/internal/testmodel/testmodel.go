// Package testmodel builds tiny random-weight GGUF models for tests.
//
// The models have the real tensor layout and metadata of llama.cpp's "llama",
// "qwen2" and "qwen3" architectures and a small byte-level BPE vocabulary
// with ChatML control tokens, so every code path of the embedded engine runs,
// fast, on nonsense weights.
package testmodel

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/cocoon-go/cocoon/engine/embedded/gguf"
)

// Config describes a model to build. Zero fields take the defaults of
// Default.
type Config struct {
	Arch     string          // "llama", "qwen2" or "qwen3"
	Type     gguf.TensorType // of the weight matrices: F32, F16, BF16, Q8_0 or Q4_0
	Dim      int
	Layers   int
	Heads    int
	KVHeads  int
	HeadDim  int // 0: Dim/Heads
	FFN      int
	Context  int
	RopeBase float32
	Tied     bool   // leave out output.weight, as small models do
	Seed     uint64 // of the weights
	Template string // tokenizer.chat_template; "" leaves it out
	// RopeFreqs, when set, is written as rope_freqs.weight (Llama 3.1's
	// per-frequency divisors), HeadDim/2 of them.
	RopeFreqs []float32
	// KV sets or overrides metadata entries; a nil value removes the key.
	KV map[string]any
}

// Default is a model small enough for unit tests: 64 dimensions, 2 layers,
// grouped-query attention with 4 heads sharing 2 key-value heads.
var Default = Config{Arch: "llama", Type: gguf.F32, Dim: 64, Layers: 2, Heads: 4, KVHeads: 2, FFN: 96, Context: 64, RopeBase: 10000, Seed: 1}

func (c *Config) fill() {
	d := Default
	if c.Arch == "" {
		c.Arch = d.Arch
	}
	if c.Dim == 0 {
		c.Dim = d.Dim
	}
	if c.Layers == 0 {
		c.Layers = d.Layers
	}
	if c.Heads == 0 {
		c.Heads = d.Heads
	}
	if c.KVHeads == 0 {
		c.KVHeads = d.KVHeads
	}
	if c.HeadDim == 0 {
		c.HeadDim = c.Dim / c.Heads
	}
	if c.FFN == 0 {
		c.FFN = d.FFN
	}
	if c.Context == 0 {
		c.Context = d.Context
	}
	if c.RopeBase == 0 {
		c.RopeBase = d.RopeBase
	}
}

// Special tokens of the vocabulary.
const (
	EndOfText = "<|endoftext|>"
	ImStart   = "<|im_start|>"
	ImEnd     = "<|im_end|>"
)

// merges are the BPE merges of the vocabulary, in rank order; each joins
// two tokens that exist before it.
var merges = []string{
	"a s", "as s", "ass i", "assi s", "assis t", "Ġ t", "h e", "Ġt he", "i n", "e r", "Ġ a", "a n",
	"assist an", "assistan t", "o n", "r e", "Ġ s", "e n", "Ġ w", "o r", "l l", "Ġ o", "i s", "a t",
	"Ġ h", "e d", "i t", "o u", "in g", "Ġ c", "he ll", "hell o", "Ġ hello", "Ġw or", "l d",
	"Ġwor ld", "Ġ i", "Ġi s", "Ġa n", "Ġan d", "Ġ 1", "1 2", "Ċ Ċ", "u s", "us er",
}

// Vocab returns the vocabulary: the 256 byte tokens of GPT-2's byte-level
// alphabet in byte order, one token per merge, then the control tokens
// EndOfText, ImStart and ImEnd. It also returns the token types and merges.
func Vocab() (tokens []string, types []int32, merges_ []string) {
	for b := range 256 {
		tokens = append(tokens, string(byteRune(byte(b))))
	}
	for _, m := range merges {
		var a, b string
		fmt.Sscan(m, &a, &b)
		tokens = append(tokens, a+b)
	}
	types = make([]int32, len(tokens), len(tokens)+3)
	for i := range types {
		types[i] = 1
	}
	for _, s := range []string{EndOfText, ImStart, ImEnd} {
		tokens = append(tokens, s)
		types = append(types, 3)
	}
	return tokens, types, append([]string(nil), merges...)
}

// ID returns the id of token s in Vocab, or -1.
func ID(s string) int {
	tokens, _, _ := Vocab()
	for i, t := range tokens {
		if t == s {
			return i
		}
	}
	return -1
}

// byteRune is GPT-2's printable stand-in for byte b.
func byteRune(b byte) rune {
	if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE {
		return rune(b)
	}
	n := 0
	for c := range int(b) {
		if !(c >= '!' && c <= '~' || c >= 0xA1 && c <= 0xAC || c >= 0xAE) {
			n++
		}
	}
	return rune(256 + n)
}

type entry struct {
	key   string
	value any
}

// ChatML is a chat template in the form most small models use.
const ChatML = `{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`

// Build encodes the model described by c.
func Build(c Config) ([]byte, error) {
	c.fill()
	tokens, types, merges := Vocab()
	vocab := len(tokens)
	rng := rand.New(rand.NewPCG(c.Seed, 42))
	var w gguf.Writer
	a := c.Arch
	kv := []entry{
		{"general.architecture", a},
		{"general.name", "testmodel"},
		{a + ".context_length", uint32(c.Context)},
		{a + ".embedding_length", uint32(c.Dim)},
		{a + ".block_count", uint32(c.Layers)},
		{a + ".feed_forward_length", uint32(c.FFN)},
		{a + ".attention.head_count", uint32(c.Heads)},
		{a + ".attention.head_count_kv", uint32(c.KVHeads)},
		{a + ".rope.freq_base", c.RopeBase},
		{a + ".rope.dimension_count", uint32(c.HeadDim)},
		{a + ".attention.layer_norm_rms_epsilon", float32(1e-5)},
		{"tokenizer.ggml.model", "gpt2"},
		{"tokenizer.ggml.pre", "gpt-2"},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.merges", merges},
		{"tokenizer.ggml.bos_token_id", uint32(vocab - 3)},
		{"tokenizer.ggml.eos_token_id", uint32(vocab - 1)},
		{"tokenizer.ggml.add_bos_token", false},
	}
	if c.HeadDim != c.Dim/c.Heads {
		kv = append(kv, entry{a + ".attention.key_length", uint32(c.HeadDim)},
			entry{a + ".attention.value_length", uint32(c.HeadDim)})
	}
	if c.Template != "" {
		kv = append(kv, entry{"tokenizer.chat_template", c.Template})
	}
	done := map[string]bool{}
	for _, e := range kv {
		v, over := c.KV[e.key]
		done[e.key] = true
		switch {
		case !over:
			w.AddKV(e.key, e.value)
		case v != nil:
			w.AddKV(e.key, v)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.KV)) {
		if v := c.KV[k]; !done[k] && v != nil {
			w.AddKV(k, v)
		}
	}

	var err error
	matrix := func(name string, in, out int, scale float32) {
		v := make([]float32, in*out)
		for i := range v {
			v[i] = (rng.Float32()*2 - 1) * scale
		}
		var data []byte
		switch c.Type {
		case gguf.F32:
			data = gguf.EncodeF32(v)
		case gguf.F16:
			data = gguf.EncodeF16(v)
		case gguf.BF16:
			for _, f := range v {
				bits := math.Float32bits(f) >> 16 // truncate: BF16 is the top half
				data = append(data, byte(bits), byte(bits>>8))
			}
		case gguf.Q8_0:
			data = gguf.QuantizeQ8_0(v)
		case gguf.Q4_0:
			data = gguf.QuantizeQ4_0(v)
		default:
			err = fmt.Errorf("testmodel: unsupported weight type %s", c.Type)
		}
		w.AddTensor(name, c.Type, []uint64{uint64(in), uint64(out)}, data)
	}
	vector := func(name string, n int, center, spread float32) {
		v := make([]float32, n)
		for i := range v {
			v[i] = center + (rng.Float32()*2-1)*spread
		}
		w.AddTensor(name, gguf.F32, []uint64{uint64(n)}, gguf.EncodeF32(v))
	}
	qDim, kvDim := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	matrix("token_embd.weight", c.Dim, vocab, 1)
	for l := range c.Layers {
		p := fmt.Sprintf("blk.%d.", l)
		vector(p+"attn_norm.weight", c.Dim, 1, 0.2)
		matrix(p+"attn_q.weight", c.Dim, qDim, 0.3)
		matrix(p+"attn_k.weight", c.Dim, kvDim, 0.3)
		matrix(p+"attn_v.weight", c.Dim, kvDim, 0.3)
		if c.Arch == "qwen2" {
			vector(p+"attn_q.bias", qDim, 0, 0.2)
			vector(p+"attn_k.bias", kvDim, 0, 0.2)
			vector(p+"attn_v.bias", kvDim, 0, 0.2)
		}
		if c.Arch == "qwen3" {
			vector(p+"attn_q_norm.weight", c.HeadDim, 1, 0.2)
			vector(p+"attn_k_norm.weight", c.HeadDim, 1, 0.2)
		}
		matrix(p+"attn_output.weight", qDim, c.Dim, 0.1)
		vector(p+"ffn_norm.weight", c.Dim, 1, 0.2)
		matrix(p+"ffn_gate.weight", c.Dim, c.FFN, 0.2)
		matrix(p+"ffn_up.weight", c.Dim, c.FFN, 0.2)
		matrix(p+"ffn_down.weight", c.FFN, c.Dim, 0.1)
	}
	vector("output_norm.weight", c.Dim, 1, 0.2)
	if c.RopeFreqs != nil {
		w.AddTensor("rope_freqs.weight", gguf.F32, []uint64{uint64(len(c.RopeFreqs))}, gguf.EncodeF32(c.RopeFreqs))
	}
	if !c.Tied {
		matrix("output.weight", c.Dim, vocab, 0.3)
	}
	if err != nil {
		return nil, err
	}
	return w.Bytes()
}
