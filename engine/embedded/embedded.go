// Package embedded is an inference engine that runs a GGUF language model on
// the CPU in pure Go, so a worker answers with no GPU and no network.
//
// It serves one model: Llama-architecture weights (see package llama), a
// byte-level BPE or SentencePiece vocabulary (package tokenizer) and the
// file's Jinja chat template.
package embedded

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/embedded/gguf"
	"github.com/cocoon-go/cocoon/engine/embedded/llama"
	"github.com/cocoon-go/cocoon/engine/embedded/tokenizer"
	"github.com/cocoon-go/cocoon/price"
)

// Options configure an Engine.
type Options struct {
	// Name is the model name apps ask for. LoadFile defaults it to the file's
	// base name without ".gguf"; Load's name argument, if set, overrides it.
	Name string
	// MaxConcurrent bounds how many requests run at once; more wait their
	// turn. 0 means DefaultMaxConcurrent.
	MaxConcurrent int
	// Threads is how many goroutines one matrix product uses; 0 means
	// GOMAXPROCS.
	Threads int
	// Progress, if set, is called as the model file is read and hashed, with
	// the bytes done so far out of total.
	Progress func(done, total int64)
	// DefaultMaxTokens caps answers whose request sets no max_tokens; 0
	// leaves them bounded only by the context length.
	DefaultMaxTokens int
}

// DefaultMaxConcurrent is the number of requests an Engine runs at once
// unless Options say otherwise. Each uses every core, so more would only
// share them.
const DefaultMaxConcurrent = 4

// Engine serves one GGUF model. It implements engine.Engine.
type Engine struct {
	name, hash string
	data       []byte // the file; the weights point into it
	model      *llama.Model
	tok        *tokenizer.Tokenizer
	tmpl       *chatTemplate
	slots      chan struct{}
	defaultMax int
	closed     chan struct{}
}

var _ engine.Engine = (*Engine)(nil)

// Load makes an Engine that serves the GGUF file data under name, or under
// opts.Name if name is empty. The engine keeps data and reads weights from it
// in place, so data must not change.
func Load(name string, data []byte, opts Options) (*Engine, error) {
	if name == "" {
		name = opts.Name
	}
	h := sha256.New()
	total := int64(len(data))
	for off := 0; off < len(data); {
		n := min(len(data)-off, 8<<20)
		h.Write(data[off : off+n])
		off += n
		if opts.Progress != nil {
			opts.Progress(int64(off), total)
		}
	}
	return load(name, data, hex.EncodeToString(h.Sum(nil)), opts)
}

// LoadFile reads the GGUF file at path and makes an Engine that serves it.
func LoadFile(path string, opts Options) (*Engine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	total := info.Size()
	data := make([]byte, total)
	h := sha256.New()
	for off := int64(0); off < total; {
		n, err := io.ReadFull(f, data[off:min(total, off+8<<20)])
		h.Write(data[off : off+int64(n)])
		off += int64(n)
		if err != nil {
			return nil, fmt.Errorf("embedded: reading %s: %w", path, err)
		}
		if opts.Progress != nil {
			opts.Progress(off, total)
		}
	}
	name := opts.Name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), ".gguf")
	}
	e, err := load(name, data, hex.EncodeToString(h.Sum(nil)), opts)
	if err != nil {
		return nil, fmt.Errorf("%w (loading %s)", err, path)
	}
	return e, nil
}

func load(name string, data []byte, hash string, opts Options) (*Engine, error) {
	if name == "" {
		return nil, errors.New("embedded: the model needs a name")
	}
	f, err := gguf.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("embedded: model %s: %w", name, err)
	}
	model, err := llama.Load(f, opts.Threads)
	if err != nil {
		return nil, fmt.Errorf("embedded: model %s: %w", name, err)
	}
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("embedded: model %s: %w", name, err)
	}
	if tok.Len() > model.Vocab {
		return nil, fmt.Errorf("embedded: model %s: %d tokens but only %d embeddings", name, tok.Len(), model.Vocab)
	}
	src, err := f.String("tokenizer.chat_template")
	if err != nil && !errors.Is(err, gguf.ErrKeyNotFound) {
		return nil, fmt.Errorf("embedded: model %s: %w", name, err)
	}
	var bos, eos string
	if id := tok.BOS(); id >= 0 {
		bos = tok.Token(id)
	}
	if id := tok.EOS(); id >= 0 {
		eos = tok.Token(id)
	}
	tmpl, err := newChatTemplate(src, bos, eos)
	if err != nil {
		return nil, fmt.Errorf("%w (model %s)", err, name)
	}
	slots := opts.MaxConcurrent
	if slots <= 0 {
		slots = DefaultMaxConcurrent
	}
	return &Engine{
		name: name, hash: hash, data: data, model: model, tok: tok, tmpl: tmpl,
		slots: make(chan struct{}, slots), defaultMax: opts.DefaultMaxTokens, closed: make(chan struct{}),
	}, nil
}

// Models lists the one model the engine serves.
func (e *Engine) Models() []engine.Model {
	return []engine.Model{{ID: e.name, Hash: e.hash, ContextLength: e.model.ContextLength}}
}

// Endpoint returns engine.Embedded: prompts never leave the process.
func (e *Engine) Endpoint() string { return engine.Embedded }

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("embedded: engine closed")

// Close stops the engine from taking new requests. Requests already running
// finish.
func (e *Engine) Close() error {
	select {
	case <-e.closed:
	default:
		close(e.closed)
	}
	return nil
}

// Run answers req, as engine.Engine documents.
func (e *Engine) Run(ctx context.Context, req *engine.Request, emit engine.Emit) (price.Usage, error) {
	select {
	case <-e.closed:
		return price.Usage{}, ErrClosed
	default:
	}
	if req.Model != e.name {
		return price.Usage{}, fmt.Errorf("%w: %q (this engine serves %q)", engine.ErrUnknownModel, req.Model, e.name)
	}
	prompt, err := e.prompt(req)
	if err != nil {
		return price.Usage{}, err
	}
	g, err := e.newGeneration(req, prompt)
	if err != nil {
		return price.Usage{}, err
	}
	select {
	case e.slots <- struct{}{}:
		defer func() { <-e.slots }()
	case <-ctx.Done():
		return price.Usage{}, ctx.Err()
	}
	out := newResponder(req, emit)
	return g.run(ctx, out)
}

// prompt returns the tokens of req's prompt, beginning with BOS if the model
// wants it.
func (e *Engine) prompt(req *engine.Request) ([]int, error) {
	var text string
	switch req.Kind {
	case engine.Chat:
		if len(req.Messages) == 0 {
			return nil, &engine.BadRequestError{Msg: "no messages"}
		}
		var err error
		if text, err = e.tmpl.render(req.Messages); err != nil {
			return nil, &engine.BadRequestError{Msg: "chat template: " + err.Error()}
		}
	case engine.Completion:
		text = req.Prompt
	default:
		return nil, &engine.BadRequestError{Msg: fmt.Sprintf("endpoint %q is not supported", req.Kind)}
	}
	ids := e.tok.Encode(text)
	if e.tok.AddBOS() && (len(ids) == 0 || ids[0] != e.tok.BOS()) {
		ids = append([]int{e.tok.BOS()}, ids...)
	}
	switch {
	case len(ids) == 0:
		return nil, &engine.BadRequestError{Msg: "empty prompt"}
	case len(ids) > e.model.ContextLength:
		return nil, &engine.BadRequestError{Msg: fmt.Sprintf("prompt of %d tokens exceeds the context length of %d", len(ids), e.model.ContextLength)}
	}
	return ids, nil
}

// Limits on stop strings, which are matched against the text after every
// token.
const (
	MaxStops   = 16
	MaxStopLen = 512
)

// prefillChunk is how many prompt tokens run between checks for a cancelled
// request.
const prefillChunk = 64

// generation is one answer being written.
type generation struct {
	e         *Engine
	prompt    []int
	maxTokens int
	sampler   *sampler
	stops     []string
}

func (e *Engine) newGeneration(req *engine.Request, prompt []int) (*generation, error) {
	temp, topP := 1.0, 1.0
	if req.Temperature != nil {
		temp = *req.Temperature
	}
	if req.TopP != nil {
		topP = *req.TopP
	}
	switch {
	case temp < 0 || temp > 2 || temp != temp:
		return nil, &engine.BadRequestError{Msg: fmt.Sprintf("temperature %v is not between 0 and 2", temp)}
	case topP <= 0 || topP > 1 || topP != topP:
		return nil, &engine.BadRequestError{Msg: fmt.Sprintf("top_p %v is not in (0, 1]", topP)}
	case req.MaxTokens < 0:
		return nil, &engine.BadRequestError{Msg: fmt.Sprintf("max_tokens %d is negative", req.MaxTokens)}
	case len(req.Stop) > MaxStops:
		return nil, &engine.BadRequestError{Msg: fmt.Sprintf("%d stop strings, at most %d", len(req.Stop), MaxStops)}
	}
	for _, s := range req.Stop {
		if len(s) > MaxStopLen {
			return nil, &engine.BadRequestError{Msg: fmt.Sprintf("stop string of %d bytes, at most %d", len(s), MaxStopLen)}
		}
	}
	seed := rand.Uint64()
	if req.Seed != nil {
		seed = uint64(*req.Seed)
	}
	maxTokens := req.MaxTokens
	if maxTokens == 0 {
		maxTokens = e.defaultMax
	}
	return &generation{e: e, prompt: prompt, maxTokens: maxTokens, sampler: newSampler(temp, topP, seed), stops: req.Stop}, nil
}

// run feeds the prompt and samples the answer token by token, passing text
// to out as it becomes final.
func (g *generation) run(ctx context.Context, out *responder) (price.Usage, error) {
	usage := price.Usage{PromptTokens: uint64(len(g.prompt))}
	if err := out.start(); err != nil {
		return usage, err
	}
	state := g.e.model.NewState()
	var logits []float32
	for rest := g.prompt; len(rest) > 0; {
		if err := ctx.Err(); err != nil {
			return usage, err
		}
		n := min(len(rest), prefillChunk)
		var err error
		if logits, err = state.Prefill(rest[:n]); err != nil {
			return usage, fmt.Errorf("embedded: %w", err)
		}
		rest = rest[n:]
	}

	dec := g.e.tok.NewStreamDecoder()
	stop := newStopper(g.stops)
	finish, stopped := "", false
	for finish == "" {
		// Files may pad the embeddings past the vocabulary; never pick those.
		tok := g.sampler.sample(logits[:g.e.tok.Len()])
		usage.CompletionTokens++
		if g.e.tok.IsEnd(tok) {
			finish = api.FinishStop
			break
		}
		var text string
		text, stopped = stop.push(dec.Next(tok))
		if err := out.text(text); err != nil {
			return usage, err
		}
		switch {
		case stopped:
			finish = api.FinishStop
		case g.maxTokens > 0 && int(usage.CompletionTokens) >= g.maxTokens,
			state.Pos() >= g.e.model.ContextLength:
			finish = api.FinishLength
		default:
			if err := ctx.Err(); err != nil {
				return usage, err
			}
			var err error
			if logits, err = state.Forward(tok, true); err != nil {
				return usage, fmt.Errorf("embedded: %w", err)
			}
		}
	}
	if !stopped {
		// Release what the decoder and the stop matcher held back.
		text, hit := stop.push(dec.Flush())
		if hit {
			finish = api.FinishStop
		} else {
			text += stop.flush()
		}
		if err := out.text(text); err != nil {
			return usage, err
		}
	}
	return usage, out.finish(finish, usage)
}
