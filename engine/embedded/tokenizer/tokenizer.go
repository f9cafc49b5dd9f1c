// Package tokenizer turns text into the token ids of a GGUF model and back,
// following llama.cpp: byte-level BPE ("gpt2") and SentencePiece ("llama").
package tokenizer

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cocoon-go/cocoon/engine/embedded/gguf"
)

// TokenType is the kind of a vocabulary entry, as tokenizer.ggml.token_type
// numbers them.
type TokenType int32

// Token types.
const (
	Normal      TokenType = 1
	Unknown     TokenType = 2
	Control     TokenType = 3
	UserDefined TokenType = 4
	Unused      TokenType = 5
	Byte        TokenType = 6
)

// Tokenizer encodes and decodes text for one vocabulary. It is safe for
// concurrent use.
type Tokenizer struct {
	model  string // "gpt2" or "llama"
	tokens []string
	types  []TokenType
	ids    map[string]int
	pieces [][]byte // decoded bytes of each token

	passes       []splitter        // gpt2: pre-tokenizer
	ranks        map[[2]string]int // gpt2: merge priority, lower first
	ignoreMerges bool              // gpt2: whole-word tokens skip BPE
	scores       []float32         // llama: merge priority, higher first
	byteIDs      [256]int          // llama: <0xXX> byte fallback tokens, -1 if absent

	special map[byte][]int // control and user-defined tokens by first byte, longest first

	bos, eos, eot, eom, unk int
	addBOS, addSpacePrefix  bool
}

// ErrUnsupported is wrapped by errors for tokenizers this package cannot run.
var ErrUnsupported = errors.New("tokenizer: unsupported")

// FromGGUF builds the tokenizer described by a model file's tokenizer.ggml.*
// metadata.
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	model, err := f.String("tokenizer.ggml.model")
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t := &Tokenizer{model: model, bos: -1, eos: -1, eot: -1, eom: -1, unk: -1}
	if t.tokens, err = f.Strings("tokenizer.ggml.tokens"); err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	n := len(t.tokens)
	if n == 0 {
		return nil, fmt.Errorf("tokenizer: tokenizer.ggml.tokens is empty")
	}
	types, err := f.Int32s("tokenizer.ggml.token_type")
	switch {
	case errors.Is(err, gguf.ErrKeyNotFound):
		types = nil
	case err != nil:
		return nil, fmt.Errorf("tokenizer: %w", err)
	case len(types) != n:
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens", len(types), n)
	}
	t.types = make([]TokenType, n)
	for i := range t.types {
		t.types[i] = Normal
		if types != nil {
			t.types[i] = TokenType(types[i])
		}
	}
	t.ids = make(map[string]int, n)
	for i, s := range t.tokens {
		if _, dup := t.ids[s]; !dup {
			t.ids[s] = i
		}
	}

	pre, err := optional(f.String, "tokenizer.ggml.pre", "")
	if err != nil {
		return nil, err
	}
	switch model {
	case "gpt2":
		if t.passes, err = preTokenizer(pre); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnsupported, err)
		}
		t.ignoreMerges = ignoreMergesPre[pre]
		merges, err := f.Strings("tokenizer.ggml.merges")
		if err != nil {
			return nil, fmt.Errorf("tokenizer: gpt2 vocabulary needs merges: %w", err)
		}
		t.ranks = make(map[[2]string]int, len(merges))
		for i, m := range merges {
			a, b, ok := strings.Cut(m, " ")
			if !ok {
				return nil, fmt.Errorf("tokenizer: merge %d %q has no space", i, m)
			}
			if _, dup := t.ranks[[2]string{a, b}]; !dup {
				t.ranks[[2]string{a, b}] = i
			}
		}
		t.addBOS = ignoreMergesPre[pre] // llama.cpp's default for Llama 3
	case "llama":
		if t.scores, err = f.Float32s("tokenizer.ggml.scores"); err != nil {
			return nil, fmt.Errorf("tokenizer: sentencepiece vocabulary needs scores: %w", err)
		}
		if len(t.scores) != n {
			return nil, fmt.Errorf("tokenizer: %d scores for %d tokens", len(t.scores), n)
		}
		for b := range t.byteIDs {
			t.byteIDs[b] = -1
			if id, ok := t.ids[fmt.Sprintf("<0x%02X>", b)]; ok {
				t.byteIDs[b] = id
			}
		}
		t.addBOS, t.addSpacePrefix = true, true
	default:
		return nil, fmt.Errorf("%w: tokenizer model %q (want gpt2 or llama)", ErrUnsupported, model)
	}

	for _, s := range []struct {
		key string
		id  *int
	}{
		{"bos_token_id", &t.bos}, {"eos_token_id", &t.eos}, {"eot_token_id", &t.eot},
		{"eom_token_id", &t.eom}, {"unknown_token_id", &t.unk},
	} {
		v, err := optional(f.Int, "tokenizer.ggml."+s.key, -1)
		if err != nil {
			return nil, err
		}
		if v >= 0 && v < int64(n) { // llama.cpp, too, ignores ids out of range
			*s.id = int(v)
		}
	}
	if t.addBOS, err = optional(f.Bool, "tokenizer.ggml.add_bos_token", t.addBOS); err != nil {
		return nil, err
	}
	if t.addSpacePrefix, err = optional(f.Bool, "tokenizer.ggml.add_space_prefix", t.addSpacePrefix); err != nil {
		return nil, err
	}
	if t.addBOS && t.bos < 0 {
		return nil, fmt.Errorf("tokenizer: add_bos_token is set but there is no valid bos_token_id")
	}

	t.special = map[byte][]int{}
	for id, typ := range t.types {
		if (typ == Control || typ == UserDefined) && t.tokens[id] != "" {
			c := t.tokens[id][0]
			t.special[c] = append(t.special[c], id)
		}
	}
	for _, ids := range t.special {
		sort.SliceStable(ids, func(i, j int) bool { return len(t.tokens[ids[i]]) > len(t.tokens[ids[j]]) })
	}
	t.pieces = make([][]byte, n)
	for id := range t.pieces {
		t.pieces[id] = t.decodeToken(id)
	}
	return t, nil
}

// optional returns get(key), or def when the key is absent.
func optional[T any](get func(string) (T, error), key string, def T) (T, error) {
	v, err := get(key)
	if errors.Is(err, gguf.ErrKeyNotFound) {
		return def, nil
	}
	if err != nil {
		return def, fmt.Errorf("tokenizer: %w", err)
	}
	return v, nil
}

// Len is the number of tokens in the vocabulary.
func (t *Tokenizer) Len() int { return len(t.tokens) }

// Token is the text of token id as the vocabulary stores it.
func (t *Tokenizer) Token(id int) string { return t.tokens[id] }

// Type is the type of token id.
func (t *Tokenizer) Type(id int) TokenType { return t.types[id] }

// BOS is the beginning-of-sequence token, or -1.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS is the end-of-sequence token, or -1.
func (t *Tokenizer) EOS() int { return t.eos }

// AddBOS reports whether prompts start with BOS.
func (t *Tokenizer) AddBOS() bool { return t.addBOS }

// IsEnd reports whether generating id ends the answer: end of sequence,
// end of turn or message, or any other control token.
func (t *Tokenizer) IsEnd(id int) bool {
	return id == t.eos || id == t.eot || id == t.eom || t.types[id] == Control
}

// Encode tokenizes text. Control and user-defined tokens written out in text
// (a chat template's "<|im_start|>", say) become those tokens. No BOS is added.
func (t *Tokenizer) Encode(text string) []int {
	var out []int
	atStart := true // SentencePiece prefixes a space to text at the start or after a special token
	emit := func(s string) {
		if s == "" {
			return
		}
		if t.model == "llama" {
			out = t.encodeSPM(s, atStart, out)
		} else {
			out = t.encodeBPE(s, out)
		}
		atStart = false
	}
	plain := 0
	for i := 0; i < len(text); {
		id := t.specialAt(text[i:])
		if id < 0 {
			i++
			continue
		}
		emit(text[plain:i])
		out = append(out, id)
		atStart = true
		i += len(t.tokens[id])
		plain = i
	}
	emit(text[plain:])
	return out
}

// specialAt returns the longest special token that s starts with, or -1.
func (t *Tokenizer) specialAt(s string) int {
	for _, id := range t.special[s[0]] {
		if strings.HasPrefix(s, t.tokens[id]) {
			return id
		}
	}
	return -1
}

// Piece is the bytes token id stands for in generated text: nothing for
// control tokens, and possibly part of a multibyte UTF-8 character.
func (t *Tokenizer) Piece(id int) []byte { return t.pieces[id] }

// Decode concatenates the pieces of ids.
func (t *Tokenizer) Decode(ids []int) string {
	var b []byte
	for _, id := range ids {
		b = append(b, t.pieces[id]...)
	}
	return string(b)
}

func (t *Tokenizer) decodeToken(id int) []byte {
	s := t.tokens[id]
	switch t.types[id] {
	case Control, Unknown, Unused:
		return nil
	case UserDefined:
		return []byte(s)
	case Byte:
		if t.model == "llama" {
			if len(s) == 6 && strings.HasPrefix(s, "<0x") && s[5] == '>' {
				if b, err := strconv.ParseUint(s[3:5], 16, 8); err == nil {
					return []byte{byte(b)}
				}
			}
			return nil
		}
	}
	if t.model == "llama" {
		return []byte(strings.ReplaceAll(s, spmSpace, " "))
	}
	return unmapBytes(s)
}
