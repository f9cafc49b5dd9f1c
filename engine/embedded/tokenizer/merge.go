package tokenizer

import (
	"container/heap"
	"strings"
	"unicode/utf8"
)

// byteRune maps each byte to the printable rune GPT-2's byte-level BPE
// writes it as; runeByte is the inverse.
var (
	byteRune [256]rune
	runeByte = map[rune]byte{}
)

func init() {
	n := 0
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			byteRune[b] = rune(b)
		} else {
			byteRune[b] = rune(256 + n)
			n++
		}
		runeByte[byteRune[b]] = byte(b)
	}
}

// mapBytes writes s in GPT-2's byte-level alphabet.
func mapBytes(s string) string {
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := range len(s) {
		b.WriteRune(byteRune[s[i]])
	}
	return b.String()
}

// unmapBytes turns a byte-level token back into bytes. Runes outside the
// alphabet pass through as UTF-8.
func unmapBytes(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if b, ok := runeByte[r]; ok {
			out = append(out, b)
		} else {
			out = utf8.AppendRune(out, r)
		}
	}
	return out
}

// spmSpace is how SentencePiece writes a space.
const spmSpace = "\u2581"

func (t *Tokenizer) encodeBPE(text string, out []int) []int {
	for _, piece := range pretokenize(text, t.passes) {
		word := mapBytes(piece)
		if id, ok := t.ids[word]; ok && t.ignoreMerges {
			out = append(out, id)
			continue
		}
		for _, sym := range merge(word, t.bpePair) {
			if id, ok := t.ids[sym]; ok {
				out = append(out, id)
				continue
			}
			// A symbol the vocabulary lacks: fall back to its characters,
			// each one byte, dropping any the vocabulary lacks too.
			for _, r := range sym {
				if id, ok := t.ids[string(r)]; ok {
					out = append(out, id)
				}
			}
		}
	}
	return out
}

// bpePair scores merging a and b: earlier merges first.
func (t *Tokenizer) bpePair(a, b string) (float64, bool) {
	rank, ok := t.ranks[[2]string{a, b}]
	return -float64(rank), ok
}

func (t *Tokenizer) encodeSPM(text string, atStart bool, out []int) []int {
	if atStart && t.addSpacePrefix {
		text = " " + text
	}
	text = strings.ReplaceAll(text, " ", spmSpace)
	for _, sym := range merge(text, t.spmPair) {
		if id, ok := t.ids[sym]; ok {
			out = append(out, id)
			continue
		}
		for i := range len(sym) {
			if id := t.byteIDs[sym[i]]; id >= 0 {
				out = append(out, id)
			} else if t.unk >= 0 {
				out = append(out, t.unk)
			}
		}
	}
	return out
}

// spmPair scores merging a and b, adjacent in one string: the score of the
// token they make, if there is one.
func (t *Tokenizer) spmPair(a, b string) (float64, bool) {
	id, ok := t.ids[a+b]
	if !ok {
		return 0, false
	}
	return float64(t.scores[id]), true
}

// merge splits word into characters and merges adjacent symbols, best scored
// pair first and leftmost among equals, until no pair scores. The heap keeps
// this O(n log n), so a long hostile word cannot stall a request.
func merge(word string, score func(a, b string) (float64, bool)) []string {
	type symbol struct {
		start, end int
		prev, next int // indexes into syms, -1 at the ends
	}
	syms := make([]symbol, 0, len(word))
	for i, w := 0, 0; i < len(word); i += w {
		_, w = utf8.DecodeRuneInString(word[i:])
		syms = append(syms, symbol{start: i, end: i + w, prev: len(syms) - 1, next: len(syms) + 1})
	}
	if len(syms) == 0 {
		return nil
	}
	syms[len(syms)-1].next = -1

	var q pairs
	try := func(l, r int) {
		if l < 0 || r < 0 {
			return
		}
		a, b := syms[l], syms[r]
		if s, ok := score(word[a.start:a.end], word[b.start:b.end]); ok {
			heap.Push(&q, pair{score: s, left: l, right: r, size: b.end - a.start})
		}
	}
	for i := 1; i < len(syms); i++ {
		try(i-1, i)
	}
	for q.Len() > 0 {
		p := heap.Pop(&q).(pair)
		l, r := &syms[p.left], &syms[p.right]
		if l.end == l.start || r.end == r.start || l.next != p.right || r.end-l.start != p.size {
			continue // stale: one side has merged since
		}
		l.end, l.next = r.end, r.next
		r.end = r.start
		if l.next >= 0 {
			syms[l.next].prev = p.left
		}
		try(l.prev, p.left)
		try(p.left, l.next)
	}
	var out []string
	for i := 0; i >= 0; i = syms[i].next {
		out = append(out, word[syms[i].start:syms[i].end])
	}
	return out
}

type pair struct {
	score       float64
	left, right int
	size        int
}

// pairs is a max-heap by score, then leftmost; its methods are
// container/heap's.
type pairs []pair

func (q pairs) Len() int { return len(q) }
func (q pairs) Less(i, j int) bool {
	return q[i].score > q[j].score || q[i].score == q[j].score && q[i].left < q[j].left
}
func (q pairs) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pairs) Push(x any)   { *q = append(*q, x.(pair)) }
func (q *pairs) Pop() any {
	old := *q
	p := old[len(old)-1]
	*q = old[:len(old)-1]
	return p
}
