package tokenizer

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/cocoon-go/cocoon/engine/embedded/gguf"
	"github.com/cocoon-go/cocoon/engine/embedded/internal/testmodel"
)

func parse(t testing.TB, kv map[string]any) *gguf.File {
	t.Helper()
	var w gguf.Writer
	for _, k := range sortedKeys(kv) {
		w.AddKV(k, kv[k])
	}
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func sortedKeys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

// bpe returns the test model's byte-level vocabulary with pre-tokenizer pre.
func bpe(t testing.TB, pre string) *Tokenizer {
	t.Helper()
	tokens, types, merges := testmodel.Vocab()
	tk, err := FromGGUF(parse(t, map[string]any{
		"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre, "tokenizer.ggml.tokens": tokens,
		"tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges,
		"tokenizer.ggml.eos_token_id": uint32(len(tokens) - 1), "tokenizer.ggml.bos_token_id": uint32(len(tokens) - 3),
	}))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func texts(tk *Tokenizer, ids []int) []string {
	var out []string
	for _, id := range ids {
		out = append(out, tk.Token(id))
	}
	return out
}

func TestBPEMerges(t *testing.T) {
	tk := bpe(t, "gpt-2")
	for in, want := range map[string][]string{
		"hello world":  {"hello", "Ġworld"},
		"ello":         {"e", "ll", "o"},
		"user":         {"user"},                      // "e r" first, then "u s", then "us er"
		"the thing":    {"t", "he", "Ġt", "h", "ing"}, // no "Ġt h" merge
		"Hello":        {"H", "e", "ll", "o"},
		" 12":          {"Ġ1", "2"},
		"a\n\nb":       {"a", "Ċ", "Ċ", "b"},
		"assistant":    {"assistant"},
		"is and":       {"is", "Ġand"},
		"<|im_start|>": {"<|im_start|>"},
		"x<|im_end|>y": {"x", "<|im_end|>", "y"},
		"":             nil,
		"é":            {"Ã", "©"},
	} {
		if got := texts(tk, tk.Encode(in)); !reflect.DeepEqual(got, want) {
			t.Errorf("Encode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPreTokenizers(t *testing.T) {
	const text = "Hello world's 12345  foo!!\n\nbar I'M a+b=1234 \t"
	for pre, want := range map[string][]string{
		"gpt-2":     {"Hello", " world", "'s", " 12345", " ", " foo", "!!", "\n", "\n", "bar", " I", "'", "M", " a", "+", "b", "=", "1234", " \t"},
		"llama-bpe": {"Hello", " world", "'s", " ", "123", "45", " ", " foo", "!!\n\n", "bar", " I", "'M", " a", "+b", "=", "123", "4", " \t"},
		"qwen2":     {"Hello", " world", "'s", " ", "1", "2", "3", "4", "5", " ", " foo", "!!\n\n", "bar", " I", "'M", " a", "+b", "=", "1", "2", "3", "4", " \t"},
		"smollm":    {"Hello", " world", "'s", " ", "1", "2", "3", "4", "5", " ", " foo", "!!", "\n", "\n", "bar", " I", "'", "M", " a", "+", "b", "=", "1", "2", "3", "4", " \t"},
		"default":   {"Hello", " world", "'", "s", " ", "123", "45", " ", " foo", "!!", "\n", "\n", "bar", " I", "'", "M", " a", "+", "b", "=", "123", "4", " \t"},
	} {
		passes, err := preTokenizer(pre)
		if err != nil {
			t.Fatal(err)
		}
		if got := pretokenize(text, passes); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", pre, got, want)
		}
	}
	// Spaces before a line break go with it in Llama 3; a run of spaces leaves
	// its last one to the next word.
	passes, _ := preTokenizer("llama3")
	if got, want := pretokenize("a  \n  b\r\n", passes), []string{"a", "  \n", " ", " b", "\r\n"}; !reflect.DeepEqual(got, want) {
		t.Errorf("llama3 whitespace: got %q, want %q", got, want)
	}
	if _, err := preTokenizer("tekken"); err == nil || !strings.Contains(err.Error(), "tekken") {
		t.Errorf("unknown pre-tokenizer: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", " ", "  ", "\n", "hello", " world", "é", "日本", "🙂", "'s", "1", "23", "!", "\t", "\xff", "\xe2\x82"}
	for _, pre := range []string{"gpt-2", "llama-bpe", "qwen2", "smollm", "default"} {
		tk := bpe(t, pre)
		for range 200 {
			var b strings.Builder
			for range rng.IntN(12) {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			s := b.String()
			if got := tk.Decode(tk.Encode(s)); got != s {
				t.Fatalf("%s: Decode(Encode(%q)) = %q", pre, s, got)
			}
		}
	}
}

func TestSpecials(t *testing.T) {
	tk := bpe(t, "gpt-2")
	ids := tk.Encode("<|im_start|>user\nhi<|im_end|>\n")
	if ids[0] != testmodel.ID(testmodel.ImStart) || tk.Type(ids[0]) != Control {
		t.Errorf("first token %d %q", ids[0], tk.Token(ids[0]))
	}
	if !tk.IsEnd(testmodel.ID(testmodel.ImEnd)) || !tk.IsEnd(tk.EOS()) || tk.IsEnd(testmodel.ID("a")) {
		t.Error("IsEnd")
	}
	// Control tokens decode to nothing.
	if got := tk.Decode(ids); got != "user\nhi\n" {
		t.Errorf("Decode = %q", got)
	}
	if tk.AddBOS() || tk.BOS() != testmodel.ID(testmodel.EndOfText) || tk.Len() != len(tk.tokens) {
		t.Error("BOS settings")
	}
	if !bpe(t, "llama-bpe").AddBOS() {
		t.Error("llama-bpe should add BOS by default")
	}
}

func TestStreamDecoder(t *testing.T) {
	tk := bpe(t, "gpt-2")
	text := "a🙂é日本 x"
	ids := tk.Encode(text)
	d := tk.NewStreamDecoder()
	var got []string
	for _, id := range ids {
		s := d.Next(id)
		if !utf8.ValidString(s) {
			t.Fatalf("piece %q is not valid UTF-8", s)
		}
		got = append(got, s)
	}
	got = append(got, d.Flush())
	if strings.Join(got, "") != text {
		t.Errorf("pieces %q join to %q", got, strings.Join(got, ""))
	}
	if len(ids) <= len(strings.Fields(text)) {
		t.Errorf("expected multibyte characters split over tokens: %v", ids)
	}
	// A dangling lead byte comes out at Flush.
	d = tk.NewStreamDecoder()
	if s := d.Next(tk.Encode("\xe2")[0]); s != "" {
		t.Errorf("lead byte emitted early: %q", s)
	}
	if s := d.Flush(); s != "\xe2" {
		t.Errorf("Flush = %q", s)
	}
	for b, want := range map[string]int{"": 0, "a": 1, "\xc3": 0, "a\xc3": 1, "\xc3\xa9": 2, "\xf0\x9f\x99": 0, "\x80\x80\x80\x80": 4, "\xff": 1} {
		if got := completePrefix([]byte(b)); got != want {
			t.Errorf("completePrefix(%q) = %d, want %d", b, got, want)
		}
	}
}

// spm builds a SentencePiece vocabulary with byte fallback.
func spm(t testing.TB, extra map[string]any) *Tokenizer {
	t.Helper()
	tokens := []string{"<unk>", "<s>", "</s>"}
	types := []int32{2, 3, 3}
	scores := []float32{0, 0, 0}
	for b := range 256 {
		tokens = append(tokens, fmt.Sprintf("<0x%02X>", b))
		types = append(types, 6)
		scores = append(scores, 0)
	}
	for _, p := range []struct {
		s     string
		score float32
	}{{"▁", -5}, {"h", -6}, {"e", -6}, {"l", -6}, {"o", -6}, {"▁h", -1}, {"he", -2}, {"ll", -0.5}, {"lo", -3}, {"llo", -1.5}, {"▁he", -2.5}, {"<tool>", 0}} {
		tokens = append(tokens, p.s)
		types = append(types, 1)
		scores = append(scores, p.score)
	}
	types[len(types)-1] = 4 // <tool> is user-defined
	kv := map[string]any{
		"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types,
		"tokenizer.ggml.scores": scores, "tokenizer.ggml.bos_token_id": uint32(1), "tokenizer.ggml.eos_token_id": uint32(2),
		"tokenizer.ggml.unknown_token_id": uint32(0),
	}
	for k, v := range extra {
		kv[k] = v
	}
	tk, err := FromGGUF(parse(t, kv))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestSentencePiece(t *testing.T) {
	tk := spm(t, nil)
	for in, want := range map[string][]string{
		// ▁ h e l l o: "ll" (-0.5) first, then "▁h" (-1), "llo" (-1.5), "▁he" (-2.5);
		// "▁hello" is not a token, so two remain.
		"hello":       {"▁he", "llo"},
		"hi":          {"▁h", "<0x69>"},
		"é":           {"▁", "<0xC3>", "<0xA9>"},
		"he<tool>he":  {"▁he", "<tool>", "▁he"},
		"<s>hello":    {"<s>", "▁he", "llo"},
		"hello hello": {"▁he", "llo", "▁he", "llo"},
	} {
		if got := texts(tk, tk.Encode(in)); !reflect.DeepEqual(got, want) {
			t.Errorf("Encode(%q) = %q, want %q", in, got, want)
		}
	}
	if !tk.AddBOS() || tk.BOS() != 1 || tk.EOS() != 2 {
		t.Error("SentencePiece defaults")
	}
	for _, s := range []string{"hello", "héllo wörld 🙂", "a\nb", "<tool>x"} {
		want := " " + s
		if strings.HasPrefix(s, "<tool>") {
			want = s[:6] + " " + s[6:]
		}
		if got := tk.Decode(tk.Encode(s)); got != want {
			t.Errorf("Decode(Encode(%q)) = %q, want %q", s, got, want)
		}
	}
	noPrefix := spm(t, map[string]any{"tokenizer.ggml.add_space_prefix": false})
	if got := texts(noPrefix, noPrefix.Encode("he")); !reflect.DeepEqual(got, []string{"he"}) {
		t.Errorf("without space prefix: %q", got)
	}
}

func TestRefused(t *testing.T) {
	tokens, types, merges := testmodel.Vocab()
	base := map[string]any{"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges}
	for name, tc := range map[string]struct {
		kv   map[string]any
		want string
	}{
		"bert":          {map[string]any{"tokenizer.ggml.model": "bert"}, `tokenizer model "bert"`},
		"no model":      {map[string]any{"tokenizer.ggml.model": nil}, "tokenizer.ggml.model"},
		"pre":           {map[string]any{"tokenizer.ggml.pre": "tekken"}, `pre-tokenizer "tekken"`},
		"no merges":     {map[string]any{"tokenizer.ggml.merges": nil}, "merges"},
		"bad merge":     {map[string]any{"tokenizer.ggml.merges": []string{"ab"}}, `merge 0 "ab"`},
		"types":         {map[string]any{"tokenizer.ggml.token_type": []int32{1}}, "1 token types"},
		"no tokens":     {map[string]any{"tokenizer.ggml.tokens": []string{}}, "empty"},
		"bos":           {map[string]any{"tokenizer.ggml.add_bos_token": true}, "bos_token_id"},
		"spm no scores": {map[string]any{"tokenizer.ggml.model": "llama"}, "scores"},
	} {
		kv := map[string]any{}
		for k, v := range base {
			kv[k] = v
		}
		for k, v := range tc.kv {
			if v == nil {
				delete(kv, k)
			} else {
				kv[k] = v
			}
		}
		_, err := FromGGUF(parse(t, kv))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, tc.want)
		}
	}
}

// TestHostileWord checks that a long word costs O(n log n), not O(n²).
func TestHostileWord(t *testing.T) {
	tk := bpe(t, "gpt-2")
	s := strings.Repeat("l", 200000)
	ids := tk.Encode(s)
	if len(ids) != 100000 {
		t.Errorf("%d tokens", len(ids))
	}
}

func BenchmarkEncode(b *testing.B) {
	tk := bpe(b, "llama-bpe")
	text := strings.Repeat("Hello world, this is the assistant speaking: 12345 things!\n", 20)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tk.Encode(text)
	}
}

// TestMergeOrder checks that the best pair merges first wherever it is, and
// the leftmost among equals.
func TestMergeOrder(t *testing.T) {
	ranks := map[[2]string]float64{{"a", "b"}: -2, {"b", "c"}: -1, {"c", "c"}: -1, {"bc", "c"}: -3}
	score := func(a, b string) (float64, bool) { s, ok := ranks[[2]string{a, b}]; return s, ok }
	for in, want := range map[string][]string{
		"abc":   {"a", "bc"},
		"ab":    {"ab"},
		"ccc":   {"cc", "c"},
		"abcc":  {"a", "bcc"},
		"abccc": {"a", "bc", "cc"}, // "c c" (-1) beats "bc c" (-3)
		"":      nil,
	} {
		if got := merge(in, score); !reflect.DeepEqual(got, want) {
			t.Errorf("merge(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPreTokenizersMatchRegexps compares the hand-written scanners with the
// regular expressions they stand for, as V8 runs them: testdata/pretokenize.js
// wrote testdata/pretokenize.json.
func TestPreTokenizersMatchRegexps(t *testing.T) {
	b, err := os.ReadFile("testdata/pretokenize.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []map[string]any
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		text := c["text"].(string)
		for pre, want := range c {
			if pre == "text" {
				continue
			}
			passes, err := preTokenizer(pre)
			if err != nil {
				t.Fatal(err)
			}
			var w []string
			for _, p := range want.([]any) {
				w = append(w, p.(string))
			}
			if got := pretokenize(text, passes); len(got)+len(w) > 0 && !reflect.DeepEqual(got, w) {
				t.Errorf("%s %q:\n got %q\nwant %q", pre, text, got, w)
			}
		}
	}
}
