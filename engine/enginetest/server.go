package enginetest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine"
)

// FakeOptions configures a FakeServer. The zero value serves DefaultModel,
// answers DefaultAnswer at once, and behaves like vLLM where servers differ.
type FakeOptions struct {
	// Models lists the model names it serves; empty: DefaultModel alone.
	Models []string
	// ContextLength is reported as max_model_len in /v1/models, as vLLM
	// does; 0: not reported.
	ContextLength int
	// Answer is the text of every answer; empty: DefaultAnswer. A streamed
	// answer comes one word per chunk, between a chunk with the role (chat
	// only) and one with the finish reason.
	Answer string
	// CachedTokens is reported as prompt_tokens_details.cached_tokens (at
	// most the whole prompt); 0: no details.
	CachedTokens uint64
	// APIKey, if set, is the bearer token every request must carry (else 401).
	APIKey string
	// NoUsage makes streams end without a usage chunk, whatever the request
	// asked, like servers that never report usage when streaming.
	NoUsage bool
	// FailStatus, if not 0, refuses every completion request with this HTTP
	// status and FailMessage, in OpenAI's error shape.
	FailStatus  int
	FailMessage string
	// ChunkDelay is a pause before each streamed chunk; 0: none.
	ChunkDelay time.Duration
	// Hang makes it send the response headers (and, streaming, the first
	// chunk), then wait until the client goes away.
	Hang bool
}

// FakeServer is a fake OpenAI-compatible inference server on a local port,
// serving GET /v1/models, POST /v1/chat/completions and POST /v1/completions,
// streamed (with a usage chunk when stream_options.include_usage is set, and
// usage on every chunk with vLLM's continuous_usage_stats) or not. It checks
// requests as vLLM does: unknown models get 404, malformed bodies 400, and so
// do stream_options on a request that does not stream.
type FakeServer struct {
	// URL is the API's base URL, ending in /v1.
	URL string

	opts      FakeOptions
	srv       *httptest.Server
	quit      chan struct{} // closed by Close, to end hanging handlers
	seq       atomic.Int64
	requests  atomic.Int64
	cancelled atomic.Int64

	closeOnce  sync.Once
	mu         sync.Mutex
	lastBody   []byte
	lastHeader http.Header
}

// NewFakeServer starts a FakeServer; Close stops it.
func NewFakeServer(opts FakeOptions) *FakeServer {
	if len(opts.Models) == 0 {
		opts.Models = []string{DefaultModel}
	}
	if opts.Answer == "" {
		opts.Answer = DefaultAnswer
	}
	s := &FakeServer{opts: opts, quit: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", s.models)
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, engine.Chat) })
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, engine.Completion) })
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if opts.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+opts.APIKey {
			writeError(w, http.StatusUnauthorized, "invalid API key")
			return
		}
		mux.ServeHTTP(w, r)
	}))
	s.URL = s.srv.URL + "/v1"
	return s
}

// Close shuts the server down, waiting for its handlers to return; hanging
// ones return at once.
func (s *FakeServer) Close() {
	s.closeOnce.Do(func() { close(s.quit) })
	s.srv.Close()
}

// Requests is how many completion requests arrived (model lists not counted).
func (s *FakeServer) Requests() int64 { return s.requests.Load() }

// Cancelled is how many completion requests the client abandoned before
// their answer was complete.
func (s *FakeServer) Cancelled() int64 { return s.cancelled.Load() }

// WaitCancelled waits up to timeout for Cancelled to reach n, and reports
// whether it did. The server learns of a client going away a moment after
// the client does.
func (s *FakeServer) WaitCancelled(n int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for s.Cancelled() < n {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// LastBody is the body of the latest completion request, as received.
func (s *FakeServer) LastBody() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lastBody)
}

// LastHeader is the header of the latest completion request.
func (s *FakeServer) LastHeader() http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastHeader.Clone()
}

func (s *FakeServer) models(w http.ResponseWriter, r *http.Request) {
	type model struct {
		api.Model
		MaxModelLen int `json:"max_model_len,omitempty"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: api.ObjectList}
	for _, id := range s.opts.Models {
		list.Data = append(list.Data, model{api.Model{ID: id, Object: api.ObjectModel, Created: 1700000000, OwnedBy: "enginetest"}, s.opts.ContextLength})
	}
	writeJSON(w, http.StatusOK, list)
}

// fakeRequest is what the server reads of a request.
type fakeRequest struct {
	Model         string         `json:"model"`
	Messages      []api.Message  `json:"messages"`
	Prompt        *api.Prompt    `json:"prompt"`
	Stream        bool           `json:"stream"`
	StreamOptions *streamOptions `json:"stream_options"`
	MaxTokens     *int           `json:"max_tokens"`
	MaxCompletion *int           `json:"max_completion_tokens"`
}

type streamOptions struct {
	IncludeUsage         bool `json:"include_usage"`
	ContinuousUsageStats bool `json:"continuous_usage_stats"`
}

// fakeUsage is usage as servers report it (no costs, unlike api.Usage).
type fakeUsage struct {
	PromptTokens        uint64                   `json:"prompt_tokens"`
	CompletionTokens    uint64                   `json:"completion_tokens"`
	TotalTokens         uint64                   `json:"total_tokens"`
	PromptTokensDetails *api.PromptTokensDetails `json:"prompt_tokens_details,omitempty"`
}

func (s *FakeServer) complete(w http.ResponseWriter, r *http.Request, kind engine.Kind) {
	s.requests.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.lastBody, s.lastHeader = body, r.Header.Clone()
	s.mu.Unlock()
	rc := http.NewResponseController(w)
	broken := false // a write failed: the client went away
	defer func() {
		// The context ends when the client goes away (or when this handler
		// returns, which it has not yet).
		if broken || r.Context().Err() != nil {
			s.cancelled.Add(1)
		}
	}()

	if s.opts.FailStatus != 0 {
		writeError(w, s.opts.FailStatus, s.opts.FailMessage)
		return
	}
	var req fakeRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "malformed request: "+err.Error())
		return
	}
	switch {
	case !slices.Contains(s.opts.Models, req.Model):
		writeError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", req.Model))
		return
	case kind == engine.Chat && len(req.Messages) == 0:
		writeError(w, http.StatusBadRequest, "messages: field required")
		return
	case kind == engine.Completion && req.Prompt == nil:
		writeError(w, http.StatusBadRequest, "prompt: field required")
		return
	case !req.Stream && req.StreamOptions != nil:
		writeError(w, http.StatusBadRequest, "Stream options can only be defined when `stream=True`.")
		return
	}

	limit := 0
	if req.MaxCompletion != nil {
		limit = *req.MaxCompletion
	} else if req.MaxTokens != nil {
		limit = *req.MaxTokens
	}
	text, finish := truncate(s.opts.Answer, limit)
	var prompt uint64
	if req.Prompt != nil {
		prompt = Tokens(string(*req.Prompt))
	}
	for _, m := range req.Messages {
		prompt += Tokens(string(m.Content))
	}
	usage := func(completion uint64) *fakeUsage {
		u := &fakeUsage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
		if s.opts.CachedTokens > 0 {
			u.PromptTokensDetails = &api.PromptTokensDetails{CachedTokens: min(s.opts.CachedTokens, prompt)}
		}
		return u
	}
	prefix := "chatcmpl-fake-"
	if kind == engine.Completion {
		prefix = "cmpl-fake-"
	}
	a := answer{kind: kind, id: fmt.Sprint(prefix, s.seq.Add(1)), created: time.Now().Unix(), model: req.Model}

	if !req.Stream {
		if s.opts.Hang {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			rc.Flush()
			s.hang(r)
			return
		}
		writeJSON(w, http.StatusOK, withUsage(a.whole(text, finish, nil), usage(Tokens(text))))
		return
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	opts := req.StreamOptions
	if opts == nil {
		opts = &streamOptions{}
	}
	var sent uint64 // completion tokens so far
	send := func(obj any) bool {
		if d := s.opts.ChunkDelay; d > 0 {
			select {
			case <-r.Context().Done():
				return false
			case <-s.quit:
				return false
			case <-time.After(d):
			}
		}
		var b []byte
		if opts.ContinuousUsageStats {
			b = withUsage(obj, usage(sent))
		} else {
			b, _ = json.Marshal(obj)
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			broken = true
			return false
		}
		if rc.Flush() != nil {
			broken = true
			return false
		}
		if s.opts.Hang {
			s.hang(r)
			return false
		}
		return true
	}
	if kind == engine.Chat && !send(a.chunk("assistant", "", "")) {
		return
	}
	for _, p := range pieces(text) {
		sent++
		if !send(a.chunk("", p, "")) {
			return
		}
	}
	if !send(a.chunk("", "", finish)) {
		return
	}
	if opts.IncludeUsage && !s.opts.NoUsage {
		b := withUsage(a.emptyChunk(), usage(sent))
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			broken = true
			return
		}
	}
	if _, err := io.WriteString(w, "data: [DONE]\n\n"); err != nil {
		broken = true
	}
}

// hang waits until the client of r goes away or the server closes.
func (s *FakeServer) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.quit:
	}
}

// withUsage encodes obj with a usage field u.
func withUsage(obj any, u *fakeUsage) []byte {
	b, _ := json.Marshal(obj)
	var m map[string]json.RawMessage
	json.Unmarshal(b, &m)
	m["usage"], _ = json.Marshal(u)
	b, _ = json.Marshal(m)
	return b
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, ok := v.([]byte)
	if !ok {
		b, _ = json.Marshal(v)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

// writeError writes an error in the shape vLLM and OpenAI use.
func writeError(w http.ResponseWriter, status int, msg string) {
	type body struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    int    `json:"code"`
	}
	writeJSON(w, status, struct {
		Error body `json:"error"`
	}{body{msg, http.StatusText(status), status}})
}
