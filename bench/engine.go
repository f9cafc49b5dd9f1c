package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// DefaultEngineModel is the model Engine serves when given none.
const DefaultEngineModel = "bench-model"

// Engine is an OpenAI-compatible inference engine for load tests: it answers
// every chat completion at once with max_tokens tokens (16 when the request
// sets no limit), each the word " tok", streamed one per chunk and with a
// usage report when stream_options.include_usage asks for one. Prompt tokens
// are counted as words. It does no inference, so a benchmark in front of it
// measures what sits between the load and the engine.
//
// It serves GET /v1/models and POST /v1/chat/completions.
type Engine struct {
	// Model is the one model it serves; empty: DefaultEngineModel.
	Model string
	seq   atomic.Int64
}

func (e *Engine) model() string {
	if e.Model == "" {
		return DefaultEngineModel
	}
	return e.Model
}

// ServeHTTP serves the OpenAI API under /v1.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{
			{"id": e.model(), "object": "model", "created": 1700000000, "owned_by": "cocoon-bench"}}})
	case r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions":
		e.complete(w, r)
	default:
		engineError(w, http.StatusNotFound, "not_found", "no route "+r.Method+" "+r.URL.Path)
	}
}

func (e *Engine) complete(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model         string         `json:"model"`
		Messages      []chatMessage  `json:"messages"`
		MaxTokens     *int           `json:"max_tokens"`
		MaxCompletion *int           `json:"max_completion_tokens"`
		Stream        bool           `json:"stream"`
		StreamOptions *streamOptions `json:"stream_options"`
	}
	// Read the whole body before answering: a server that answers early
	// races the relay still sending it.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		engineError(w, http.StatusBadRequest, "bad_request", "malformed request: "+err.Error())
		return
	}
	if req.Model != e.model() {
		engineError(w, http.StatusNotFound, "model_not_found", fmt.Sprintf("the model %q does not exist", req.Model))
		return
	}
	n := 16
	if req.MaxCompletion != nil {
		n = *req.MaxCompletion
	} else if req.MaxTokens != nil {
		n = *req.MaxTokens
	}
	n = max(n, 1)
	var prompt int
	for _, m := range req.Messages {
		prompt += len(strings.Fields(m.Content))
	}
	u := usage{PromptTokens: uint64(prompt), CompletionTokens: uint64(n)}
	type usageJSON struct {
		usage
		TotalTokens uint64 `json:"total_tokens"`
	}
	id := fmt.Sprint("chatcmpl-bench-", e.seq.Add(1))
	head := map[string]any{"id": id, "created": time.Now().Unix(), "model": req.Model}

	if !req.Stream {
		head["object"] = "chat.completion"
		head["choices"] = []any{map[string]any{"index": 0, "finish_reason": "length",
			"message": map[string]any{"role": "assistant", "content": strings.Repeat(" tok", n)}}}
		head["usage"] = usageJSON{u, u.PromptTokens + u.CompletionTokens}
		writeJSON(w, http.StatusOK, head)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	head["object"] = "chat.completion.chunk"
	chunk := func(delta map[string]any, finish any) {
		head["choices"] = []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}
		b, _ := json.Marshal(head)
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	chunk(map[string]any{"role": "assistant", "content": ""}, nil)
	tok := map[string]any{"content": " tok"}
	for range n {
		chunk(tok, nil)
	}
	chunk(map[string]any{}, "length")
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		head["choices"] = []any{}
		head["usage"] = usageJSON{u, u.PromptTokens + u.CompletionTokens}
		b, _ := json.Marshal(head)
		fmt.Fprintf(w, "data: %s\n\n", b)
	}
	io.WriteString(w, "data: [DONE]\n\n")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
}

func engineError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error", "code": code}})
}

// Server is a load-test server (an Engine or a relay) on a loopback port.
type Server struct {
	// URL is its OpenAI base URL, ending in /v1.
	URL  string
	srvs []*http.Server
}

// Close stops the server, and every hop of a relay.
func (s *Server) Close() error {
	for _, h := range s.srvs {
		h.Close()
	}
	return nil
}

// listen listens on addr, which must be on loopback: these servers are for
// measuring on one machine, not for serving anyone.
func listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("bench: address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("%w: %s", ErrRemote, addr)
	}
	return net.Listen("tcp", addr)
}

// serve serves h on ln in the background and returns the server.
func serve(ln net.Listener, h http.Handler) *http.Server {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return srv
}

// StartEngine serves e on addr (on loopback; port 0 picks one).
func StartEngine(addr string, e *Engine) (*Server, error) {
	ln, err := listen(addr)
	if err != nil {
		return nil, err
	}
	return &Server{URL: "http://" + ln.Addr().String() + "/v1", srvs: []*http.Server{serve(ln, e)}}, nil
}

// StartRelay serves a bare relay in front of the engine at engineURL (its
// base URL, ending in /v1): hops httputil.ReverseProxy servers chained on
// loopback, the first on addr (port 0 picks one), each a separate listener
// and connection pool, forwarding requests and streams untouched. It is the
// baseline for what a network of relays adds: Cocoon's client → proxy →
// worker path has two hops between the client's listener and the engine.
// engineURL must be on loopback unless allowRemote is set.
func StartRelay(addr, engineURL string, hops int, allowRemote bool) (*Server, error) {
	if hops < 1 {
		return nil, fmt.Errorf("bench: a relay needs at least one hop, not %d", hops)
	}
	if !allowRemote {
		if err := CheckLoopback(engineURL); err != nil {
			return nil, err
		}
	}
	target, err := url.Parse(strings.TrimSuffix(strings.TrimRight(engineURL, "/"), "/v1"))
	if err != nil {
		return nil, fmt.Errorf("bench: engine URL %q: %w", engineURL, err)
	}
	s := &Server{}
	// Build from the engine outwards: each hop forwards to the one after it.
	for i := hops - 1; i >= 0; i-- {
		a := "127.0.0.1:0"
		if i == 0 {
			a = addr
		}
		ln, err := listen(a)
		if err != nil {
			s.Close()
			return nil, err
		}
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.FlushInterval = -1 // pass each streamed chunk on at once
		rp.Transport = NewClient(1024).Transport
		s.srvs = append(s.srvs, serve(ln, wholeBody(rp)))
		target = &url.URL{Scheme: "http", Host: ln.Addr().String()}
	}
	s.URL = target.String() + "/v1"
	return s, nil
}

// wholeBody reads a request's body before h relays it. Streaming the
// server's own request body into the transport races the server: once the
// answer's headers are written, the server closes that body, and the
// transport's last read of it (checking it is no longer than declared) fails
// and drops the connection mid-answer (about 1 request in 3,000 through two
// hops). Request bodies here are small; answers still stream.
func wholeBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			engineError(w, http.StatusRequestEntityTooLarge, "request_too_large", err.Error())
			return
		}
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		h.ServeHTTP(w, r)
	})
}
