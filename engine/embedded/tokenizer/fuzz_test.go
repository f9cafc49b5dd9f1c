package tokenizer

import (
	"strings"
	"testing"
)

// FuzzRoundTrip checks that every pre-tokenizer cuts text into pieces that
// join back to it, and that byte-level BPE decodes what it encodes.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"", "Hello world's 12345  foo!!\n\nbar", "I'M 日本 🙂 \xff\xe2\x82", " \t\r\n x", "a+b=1234"} {
		f.Add(s)
	}
	var toks []*Tokenizer
	for _, pre := range []string{"gpt-2", "llama-bpe", "qwen2", "smollm", "default"} {
		toks = append(toks, bpe(f, pre))
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.Contains(s, "<|") {
			return // special tokens decode to nothing
		}
		for _, tk := range toks {
			pieces := pretokenize(s, tk.passes)
			if strings.Join(pieces, "") != s {
				t.Fatalf("pieces %q do not join to %q", pieces, s)
			}
			if got := tk.Decode(tk.Encode(s)); got != s {
				t.Fatalf("Decode(Encode(%q)) = %q", s, got)
			}
		}
	})
}
