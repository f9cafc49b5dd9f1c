package enginetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/price"
)

// ErrInjected is the error a FakeEngine told to Fail returns (wrapped).
var ErrInjected = errors.New("enginetest: injected failure")

// FakeEngine is a fake engine.Engine: it answers every request at once with
// Text, in chat.completion(.chunk) or text_completion objects as the request's
// kind asks, and counts tokens as words (see Tokens). MaxTokens cuts the
// answer to that many words, with finish_reason "length".
//
// Set its fields before the first Run; it is then safe for concurrent use.
// The zero value serves DefaultModel and answers DefaultAnswer.
type FakeEngine struct {
	// Served lists the models it serves; empty: DefaultModel alone.
	Served []engine.Model
	// Text is the answer; empty: DefaultAnswer.
	Text string
	// Chunks is how many chunks a streamed answer comes in (at most one per
	// character); 0: one per word. The first chunk carries the role
	// "assistant", the last the finish reason.
	Chunks int
	// CachedTokens is reported as the cached part of every prompt (at most
	// all of it).
	CachedTokens uint64
	// EndpointURL is what Endpoint reports; empty: engine.Embedded.
	EndpointURL string

	// Fail makes Run return ErrInjected after it has emitted FailAfter
	// objects (0: before the first; past the last: after the last).
	Fail      bool
	FailAfter int
	// Block makes Run wait, after it has emitted BlockAfter objects, until
	// ctx is done, and return ctx's error: an engine that hangs.
	Block      bool
	BlockAfter int

	mu     sync.Mutex
	runs   int
	last   *engine.Request
	closed bool
}

var _ engine.Engine = (*FakeEngine)(nil)

// Models lists Served, or DefaultModel.
func (f *FakeEngine) Models() []engine.Model {
	if len(f.Served) == 0 {
		return []engine.Model{{ID: DefaultModel, ContextLength: 4096}}
	}
	return append([]engine.Model(nil), f.Served...)
}

// Endpoint returns EndpointURL, or engine.Embedded: the fake runs in the
// caller's process.
func (f *FakeEngine) Endpoint() string {
	if f.EndpointURL != "" {
		return f.EndpointURL
	}
	return engine.Embedded
}

// Run answers req; see FakeEngine.
func (f *FakeEngine) Run(ctx context.Context, req *engine.Request, emit engine.Emit) (price.Usage, error) {
	f.mu.Lock()
	f.runs++
	r := *req
	f.last = &r
	f.mu.Unlock()

	if !f.serves(req.Model) {
		return price.Usage{}, fmt.Errorf("%w %q", engine.ErrUnknownModel, req.Model)
	}
	if req.Kind != engine.Chat && req.Kind != engine.Completion {
		return price.Usage{}, fmt.Errorf("enginetest: request kind %q is not served", req.Kind)
	}
	text := f.Text
	if text == "" {
		text = DefaultAnswer
	}
	text, finish := truncate(text, req.MaxTokens)
	usage := price.Usage{PromptTokens: promptTokens(req), CompletionTokens: Tokens(text)}
	usage.CachedTokens = min(f.CachedTokens, usage.PromptTokens)

	a := answer{kind: req.Kind, id: req.ID, created: req.Created, model: req.Model}
	var objs []any
	if req.Stream {
		parts := split(text, f.Chunks)
		for i, p := range parts {
			role, fin := "", ""
			if i == 0 && req.Kind == engine.Chat {
				role = "assistant"
			}
			if i == len(parts)-1 {
				fin = finish
			}
			objs = append(objs, a.chunk(role, p, fin))
		}
	} else {
		objs = []any{a.whole(text, finish, api.NewUsage(usage, price.Cost{}))}
	}
	for i := 0; ; i++ {
		if f.Block && i == f.BlockAfter {
			<-ctx.Done()
			return price.Usage{}, ctx.Err()
		}
		if f.Fail && (i == f.FailAfter || (i == len(objs) && f.FailAfter > i)) {
			return price.Usage{}, fmt.Errorf("%w after %d of %d objects", ErrInjected, i, len(objs))
		}
		if i == len(objs) {
			return usage, nil
		}
		if err := ctx.Err(); err != nil {
			return price.Usage{}, err
		}
		b, err := json.Marshal(objs[i])
		if err != nil {
			return price.Usage{}, err
		}
		if err := emit(b); err != nil {
			return price.Usage{}, err
		}
	}
}

// Close marks the engine closed; see Closed.
func (f *FakeEngine) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

// Runs is how many times Run was called.
func (f *FakeEngine) Runs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs
}

// LastRequest is a copy of the request of the latest Run, or nil.
func (f *FakeEngine) LastRequest() *engine.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.last == nil {
		return nil
	}
	r := *f.last
	return &r
}

// Closed reports whether Close was called.
func (f *FakeEngine) Closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed
}

func (f *FakeEngine) serves(model string) bool {
	for _, m := range f.Models() {
		if m.ID == model {
			return true
		}
	}
	return false
}

// promptTokens counts the words of req's prompt or messages.
func promptTokens(req *engine.Request) uint64 {
	if req.Kind == engine.Completion {
		return Tokens(req.Prompt)
	}
	var n uint64
	for _, m := range req.Messages {
		n += Tokens(m.Content)
	}
	return n
}
