package embedded

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/price"
)

// responder turns generated text into OpenAI response objects: a chunk per
// piece of text when streaming, one whole object at the end otherwise.
type responder struct {
	req    *engine.Request
	emit   engine.Emit
	answer strings.Builder // the whole text, when not streaming
}

func newResponder(req *engine.Request, emit engine.Emit) *responder {
	return &responder{req: req, emit: emit}
}

func (r *responder) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("embedded: encoding response: %w", err)
	}
	return r.emit(b)
}

// start opens a streamed chat answer with the assistant's role.
func (r *responder) start() error {
	if !r.req.Stream || r.req.Kind != engine.Chat {
		return nil
	}
	return r.send(r.chunk(api.ChatDelta{Role: "assistant"}, nil))
}

// text passes on the next piece of the answer.
func (r *responder) text(s string) error {
	switch {
	case s == "":
		return nil
	case !r.req.Stream:
		r.answer.WriteString(s)
		return nil
	case r.req.Kind == engine.Chat:
		return r.send(r.chunk(api.ChatDelta{Content: s}, nil))
	default:
		return r.send(r.completion(s, nil, nil))
	}
}

// finish ends the answer: a last chunk with the finish reason when
// streaming, or the whole response with its usage.
func (r *responder) finish(reason string, u price.Usage) error {
	switch {
	case r.req.Stream && r.req.Kind == engine.Chat:
		return r.send(r.chunk(api.ChatDelta{}, &reason))
	case r.req.Stream:
		return r.send(r.completion("", &reason, nil))
	case r.req.Kind == engine.Chat:
		return r.send(api.ChatCompletion{
			ID: r.req.ID, Object: api.ObjectChatCompletion, Created: r.req.Created, Model: r.req.Model,
			Choices: []api.ChatChoice{{Message: &api.ChatMessage{Role: "assistant", Content: r.answer.String()}, FinishReason: reason}},
			Usage:   api.NewUsage(u, price.Cost{}),
		})
	default:
		return r.send(r.completion(r.answer.String(), &reason, api.NewUsage(u, price.Cost{})))
	}
}

func (r *responder) chunk(d api.ChatDelta, reason *string) api.ChatCompletionChunk {
	return api.ChatCompletionChunk{
		ID: r.req.ID, Object: api.ObjectChatCompletionChunk, Created: r.req.Created, Model: r.req.Model,
		Choices: []api.ChatChunkChoice{{Delta: d, FinishReason: reason}},
	}
}

func (r *responder) completion(text string, reason *string, u *api.Usage) api.TextCompletion {
	return api.TextCompletion{
		ID: r.req.ID, Object: api.ObjectTextCompletion, Created: r.req.Created, Model: r.req.Model,
		Choices: []api.TextChoice{{Text: text, FinishReason: reason}},
		Usage:   u,
	}
}
