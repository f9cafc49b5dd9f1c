// Package engine defines what a worker needs from an inference engine.
//
// Two implementations exist: engine/remote fronts any OpenAI-compatible HTTP
// server (vLLM, SGLang, llama.cpp server, Ollama), and engine/embedded runs a
// GGUF model on the CPU in pure Go.
package engine

import (
	"context"
	"errors"

	"github.com/cocoon-go/cocoon/price"
)

// Kind is the OpenAI endpoint a request was sent to.
type Kind string

const (
	Chat       Kind = "chat/completions"
	Completion Kind = "completions"
)

// Message is one turn of a chat.
type Message struct {
	Role    string // "system", "user", "assistant" (others pass through to remote engines)
	Content string
}

// Request is one inference request, already opened and validated by the worker.
type Request struct {
	Kind    Kind
	ID      string // completion id to put in every response object, e.g. "chatcmpl-…"
	Created int64  // unix seconds, for the "created" field
	Model   string // the network's model name, as the app asked for it
	Stream  bool

	// Body is the app's JSON request as sent. Remote engines forward it (with
	// the model name mapped); the embedded engine uses the parsed fields below.
	Body []byte

	Messages    []Message // Chat only
	Prompt      string    // Completion only
	MaxTokens   int       // most completion tokens; the worker always sets it (0: the engine's default)
	Temperature *float64  // nil: the engine's default (1.0)
	TopP        *float64  // nil: 1.0
	Seed        *int64    // nil: random
	Stop        []string

	// CacheSalt separates prefix caches of different clients, so one tenant
	// cannot time another's cache hits (vLLM's cache_salt).
	CacheSalt string
}

// Model describes one model an engine serves.
type Model struct {
	ID            string // the name apps use
	Hash          string // hex SHA-256 of the weights, where known; allow-lists refer to it
	ContextLength int
	// Upstream is the engine server's name for the model where it differs
	// from ID (a remote engine's model map); the worker attests it.
	Upstream string
}

// Embedded is the Endpoint of an engine that runs in the worker's own process.
const Embedded = "embedded"

// Emit receives one response object as JSON. For a streaming request it is
// called once per chunk ("chat.completion.chunk" or "text_completion"), in
// order, never with a usage-only chunk: the worker appends that itself from the
// returned Usage. For a non-streaming request it is called exactly once with the
// whole response object, whose "usage" field counts the tokens.
type Emit func(data []byte) error

// Engine runs inference.
type Engine interface {
	// Models lists the models this engine serves.
	Models() []Model
	// Endpoint says where Run sends prompts: Embedded for an engine in the
	// worker's process, or the server's base URL without credentials. The
	// worker attests it, and refuses by default one outside its machine.
	Endpoint() string
	// Run executes req, passing response objects to emit, and returns the
	// tokens it counted. It stops early when ctx is done or emit fails.
	Run(ctx context.Context, req *Request, emit Emit) (price.Usage, error)
	// Close releases the engine's resources.
	Close() error
}

// ErrUnknownModel is returned by Run for a model the engine does not serve.
var ErrUnknownModel = errors.New("engine: unknown model")

// BadRequestError is a request the engine refuses as malformed or beyond its
// limits (a prompt longer than the context, say); the app gets HTTP 400.
type BadRequestError struct{ Msg string }

func (e *BadRequestError) Error() string { return "engine: " + e.Msg }
