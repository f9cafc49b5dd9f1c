// Package enginetest provides test doubles for inference engines: FakeServer,
// a fake OpenAI-compatible HTTP server (what engine/remote talks to), and
// FakeEngine, a fake engine.Engine that runs in process.
//
// Both answer at once with a fixed text and count tokens as words
// (whitespace-separated, see Tokens), so tests can predict every byte and
// every count. Neither is fit for anything but tests.
package enginetest

import (
	"strings"
	"unicode"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine"
)

// The fakes' defaults.
const (
	DefaultModel  = "fake-model"
	DefaultAnswer = "The quick brown fox jumps over the lazy dog."
)

// Tokens is how the fakes count the tokens of text: its whitespace-separated
// words. A prompt's tokens are the sum over its messages' contents.
func Tokens(text string) uint64 { return uint64(len(strings.Fields(text))) }

// truncate cuts text to at most max tokens (0: no limit) and says why the
// answer ends, as OpenAI's finish_reason does.
func truncate(text string, max int) (string, string) {
	p := pieces(text)
	if max <= 0 || Tokens(text) <= uint64(max) {
		return text, api.FinishStop
	}
	return strings.Join(p[:max], ""), api.FinishLength
}

// pieces splits text into one piece per word, each with the whitespace
// before it (the first also with what precedes it, the last with what
// follows it), the way a tokenizer's pieces join back into the text.
func pieces(text string) []string {
	var out []string
	start, space, wsStart, seen := 0, false, 0, false
	for i, r := range text {
		if unicode.IsSpace(r) {
			if !space {
				wsStart = i
			}
			space = true
			continue
		}
		if space && seen {
			out = append(out, text[start:wsStart])
			start = wsStart
		}
		space, seen = false, true
	}
	if text != "" {
		out = append(out, text[start:])
	}
	return out
}

// split cuts text into n parts of about equal length in runes, fewer if text
// is shorter; n <= 0 means one part per word. There is always at least one
// part, so an empty answer still streams a chunk.
func split(text string, n int) []string {
	if n <= 0 {
		if p := pieces(text); len(p) > 0 {
			return p
		}
		return []string{text}
	}
	r := []rune(text)
	n = max(1, min(n, len(r)))
	out := make([]string, n)
	for i := range n {
		out[i] = string(r[i*len(r)/n : (i+1)*len(r)/n])
	}
	return out
}

// answer builds the response objects of one answer.
type answer struct {
	kind    engine.Kind
	id      string
	created int64
	model   string
}

// chunk is one streamed object carrying text; role and finish are set only
// when not empty.
func (a answer) chunk(role, text, finish string) any {
	var f *string
	if finish != "" {
		f = &finish
	}
	if a.kind == engine.Completion {
		return api.TextCompletion{ID: a.id, Object: api.ObjectTextCompletion, Created: a.created, Model: a.model,
			Choices: []api.TextChoice{{Text: text, FinishReason: f}}}
	}
	return api.ChatCompletionChunk{ID: a.id, Object: api.ObjectChatCompletionChunk, Created: a.created, Model: a.model,
		Choices: []api.ChatChunkChoice{{Delta: api.ChatDelta{Role: role, Content: text}, FinishReason: f}}}
}

// whole is the response object of a non-streamed answer.
func (a answer) whole(text, finish string, u *api.Usage) any {
	if a.kind == engine.Completion {
		return api.TextCompletion{ID: a.id, Object: api.ObjectTextCompletion, Created: a.created, Model: a.model,
			Choices: []api.TextChoice{{Text: text, FinishReason: &finish}}, Usage: u}
	}
	return api.ChatCompletion{ID: a.id, Object: api.ObjectChatCompletion, Created: a.created, Model: a.model,
		Choices: []api.ChatChoice{{Message: &api.ChatMessage{Role: "assistant", Content: text}, FinishReason: finish}}, Usage: u}
}

// emptyChunk is a streamed object without choices, which servers send to
// carry only usage.
func (a answer) emptyChunk() any {
	if a.kind == engine.Completion {
		return api.TextCompletion{ID: a.id, Object: api.ObjectTextCompletion, Created: a.created, Model: a.model,
			Choices: []api.TextChoice{}}
	}
	return api.ChatCompletionChunk{ID: a.id, Object: api.ObjectChatCompletionChunk, Created: a.created, Model: a.model,
		Choices: []api.ChatChunkChoice{}}
}
