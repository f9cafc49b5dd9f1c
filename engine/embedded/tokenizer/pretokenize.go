package tokenizer

import (
	"fmt"
	"unicode"
)

// A splitter cuts a fragment of text into pieces, as one regular expression
// of a Hugging Face pre-tokenizer does: the matches and the text between them
// all become pieces. It gets the fragment's runes and appends the rune index
// where each piece ends.
type splitter func(r []rune, ends []int) []int

// preTokenizers maps tokenizer.ggml.pre to the passes llama.cpp applies, in
// order. Go's regexp has no lookahead, so each pass is written by hand after
// llama.cpp's own hand-written versions in unicode.cpp.
var preTokenizers = map[string][]splitter{}

func init() {
	gpt2 := []splitter{splitGPT2}
	llama3 := []splitter{splitLlama3(3)}
	qwen2 := []splitter{splitLlama3(1)}
	starcoder := []splitter{splitEach(unicode.IsNumber), splitGPT2}
	for _, names := range []struct {
		names  []string
		passes []splitter
	}{
		{[]string{"default"}, []splitter{splitRuns(isDefaultPunct), splitGPT2, splitRuns(unicode.IsNumber), splitASCIIDigits3}},
		{[]string{"gpt-2", "phi-2", "mpt", "olmo", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de", "roberta-bpe"}, gpt2},
		{[]string{"llama-bpe", "llama3", "llama-v3", "falcon3", "smaug-bpe"}, llama3},
		{[]string{"qwen2", "deepseek-r1-qwen", "megrez"}, qwen2},
		{[]string{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone"}, starcoder},
	} {
		for _, n := range names.names {
			preTokenizers[n] = names.passes
		}
	}
}

// ignoreMergesPre lists pre-tokenizers whose words that are whole tokens skip
// BPE, as llama.cpp does for Llama 3.
var ignoreMergesPre = map[string]bool{"llama-bpe": true, "llama3": true, "llama-v3": true, "falcon3": true, "smaug-bpe": true}

func preTokenizer(name string) ([]splitter, error) {
	if name == "" {
		name = "default" // llama.cpp's choice for files that predate the key
	}
	p, ok := preTokenizers[name]
	if !ok {
		return nil, fmt.Errorf("tokenizer: unsupported pre-tokenizer %q", name)
	}
	return p, nil
}

// pretokenize applies passes to text and returns the pieces as byte ranges of
// text. Invalid UTF-8 bytes survive as U+FFFD runes that keep their width.
func pretokenize(text string, passes []splitter) []string {
	runes := make([]rune, 0, len(text))
	offs := make([]int, 0, len(text)+1)
	for i, r := range text {
		runes = append(runes, r)
		offs = append(offs, i)
	}
	offs = append(offs, len(text))

	// bounds are rune indexes; each pass refines every fragment it is given.
	bounds := []int{0, len(runes)}
	var ends []int
	for _, pass := range passes {
		next := []int{0}
		for i := 1; i < len(bounds); i++ {
			lo, hi := bounds[i-1], bounds[i]
			if lo == hi {
				continue
			}
			ends = pass(runes[lo:hi], ends[:0])
			for _, e := range ends {
				next = append(next, lo+e)
			}
		}
		bounds = next
	}
	pieces := make([]string, 0, len(bounds))
	for i := 1; i < len(bounds); i++ {
		if bounds[i] > bounds[i-1] {
			pieces = append(pieces, text[offs[bounds[i-1]]:offs[bounds[i]]])
		}
	}
	return pieces
}

func isLetter(r rune) bool { return unicode.IsLetter(r) }
func isNumber(r rune) bool { return unicode.IsNumber(r) }
func isSpace(r rune) bool  { return unicode.IsSpace(r) }

// at returns r[i], or -1 past the end, which is no category at all.
func at(r []rune, i int) rune {
	if i < len(r) {
		return r[i]
	}
	return -1
}

func is(class func(rune) bool, c rune) bool { return c >= 0 && class(c) }

func isOther(c rune) bool { return c >= 0 && !isSpace(c) && !isLetter(c) && !isNumber(c) }

// splitGPT2 is the GPT-2 pattern
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
func splitGPT2(r []rune, ends []int) []int {
	for pos := 0; pos < len(r); {
		start := pos
		c := r[pos]
		if n := contraction(r, pos, false); n > 0 {
			pos += n
		} else if c2 := ifSpace(r, pos); is(isLetter, c2) {
			pos = runOf(r, pos+skipSpace(c), isLetter)
		} else if is(isNumber, c2) {
			pos = runOf(r, pos+skipSpace(c), isNumber)
		} else if isOther(c2) {
			pos = runOf(r, pos+skipSpace(c), isOther)
		} else {
			pos = whitespace(r, pos)
		}
		if pos == start {
			pos++
		}
		ends = append(ends, pos)
	}
	return ends
}

// splitLlama3 is the Llama 3 pattern, with \p{N}{1,maxDigits}; Qwen2 uses 1:
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func splitLlama3(maxDigits int) splitter {
	return func(r []rune, ends []int) []int {
		for pos := 0; pos < len(r); {
			c := r[pos]
			if n := contraction(r, pos, true); n > 0 {
				pos += n
				ends = append(ends, pos)
				continue
			}
			if c != '\r' && c != '\n' && !isNumber(c) && (isLetter(c) || is(isLetter, at(r, pos+1))) {
				pos = runOf(r, pos+1, isLetter)
				ends = append(ends, pos)
				continue
			}
			if isNumber(c) {
				for n := 0; is(isNumber, at(r, pos)); n++ {
					if n == maxDigits {
						ends = append(ends, pos)
						n = 0
					}
					pos++
				}
				ends = append(ends, pos)
				continue
			}
			if isOther(ifSpace(r, pos)) {
				pos = runOf(r, pos+skipSpace(c), isOther)
				for at(r, pos) == '\r' || at(r, pos) == '\n' {
					pos++
				}
				ends = append(ends, pos)
				continue
			}
			// \s*[\r\n]+ takes the whitespace up to its last line break.
			lastBreak := -1
			for i := pos; is(isSpace, at(r, i)); i++ {
				if r[i] == '\r' || r[i] == '\n' {
					lastBreak = i + 1
				}
			}
			if lastBreak > 0 {
				pos = lastBreak
			} else if end := whitespace(r, pos); end > pos {
				pos = end
			} else {
				pos++
			}
			ends = append(ends, pos)
		}
		return ends
	}
}

// contraction returns the length of 's, 't, 're, 've, 'm, 'll or 'd at pos.
func contraction(r []rune, pos int, fold bool) int {
	if r[pos] != '\'' {
		return 0
	}
	lower := func(c rune) rune {
		if fold {
			return unicode.ToLower(c)
		}
		return c
	}
	switch c1 := lower(at(r, pos+1)); c1 {
	case 's', 't', 'm', 'd':
		return 2
	case 'r', 'v', 'l':
		c2 := lower(at(r, pos+2))
		if c1 == 'r' && c2 == 'e' || c1 == 'v' && c2 == 'e' || c1 == 'l' && c2 == 'l' {
			return 3
		}
	}
	return 0
}

// ifSpace returns the rune after r[pos] when r[pos] is a space, else r[pos]:
// the rune a " ?X+" alternative tests.
func ifSpace(r []rune, pos int) rune {
	if r[pos] == ' ' {
		return at(r, pos+1)
	}
	return r[pos]
}

func skipSpace(c rune) int {
	if c == ' ' {
		return 1
	}
	return 0
}

func runOf(r []rune, pos int, class func(rune) bool) int {
	for pos < len(r) && class(r[pos]) {
		pos++
	}
	return pos
}

// whitespace matches \s+(?!\S)|\s+ at pos: a run of spaces leaves its last
// one to the word that follows, unless the run ends the fragment.
func whitespace(r []rune, pos int) int {
	end := runOf(r, pos, isSpace)
	if end-pos > 1 && end < len(r) {
		return end - 1
	}
	return end
}

// splitRuns makes maximal runs of class runes pieces (the pattern [class]+).
func splitRuns(class func(rune) bool) splitter {
	return func(r []rune, ends []int) []int {
		for pos := 0; pos < len(r); {
			in := class(r[pos])
			for pos < len(r) && class(r[pos]) == in {
				pos++
			}
			ends = append(ends, pos)
		}
		return ends
	}
}

// splitEach makes every class rune its own piece (the pattern [class]).
func splitEach(class func(rune) bool) splitter {
	return func(r []rune, ends []int) []int {
		for pos := 0; pos < len(r); {
			if class(r[pos]) {
				pos++
			} else {
				for pos < len(r) && !class(r[pos]) {
					pos++
				}
			}
			ends = append(ends, pos)
		}
		return ends
	}
}

// splitASCIIDigits3 is the pattern [0-9][0-9][0-9].
func splitASCIIDigits3(r []rune, ends []int) []int {
	isDigit := func(i int) bool { return i < len(r) && r[i] >= '0' && r[i] <= '9' }
	gap := 0
	for pos := 0; pos < len(r); {
		if isDigit(pos) && isDigit(pos+1) && isDigit(pos+2) {
			if pos > gap {
				ends = append(ends, pos)
			}
			pos += 3
			ends = append(ends, pos)
			gap = pos
			continue
		}
		pos++
	}
	if gap < len(r) {
		ends = append(ends, len(r))
	}
	return ends
}

// isDefaultPunct is the class [\p{P}\$\+<=>\^~\|].
func isDefaultPunct(r rune) bool {
	switch r {
	case '$', '+', '<', '=', '>', '^', '~', '|':
		return true
	}
	return unicode.IsPunct(r)
}
