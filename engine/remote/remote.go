// Package remote runs inference on any OpenAI-compatible HTTP server (vLLM,
// SGLang, llama.cpp server, Ollama): the production engine of a worker.
//
// The app's request body is forwarded as sent, with three changes: the
// network's model name becomes the server's, a streaming request always asks
// for usage (stream_options.include_usage), and, when Config.CacheSalt is set,
// cache_salt carries the per-client salt so that tenants do not share a prefix
// cache (an app's own cache_salt is always removed: it could name another
// tenant's). Answers are relayed chunk by chunk with the network's model name and
// the worker's completion id; the token counts come only from the server's
// usage report, and an answer without one is an error, because a worker must
// not sign a receipt for counts it does not know.
package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/cocoon-go/cocoon/engine"
)

// DefaultMaxResponse is the size limit of a non-streamed answer, and of one
// streamed event, when Config.MaxResponse is zero.
const DefaultMaxResponse = 16 << 20

// Config says where the engine is and what it serves.
type Config struct {
	// BaseURL is the server's OpenAI API root, e.g. http://127.0.0.1:8000/v1;
	// requests go to BaseURL/chat/completions and BaseURL/completions.
	BaseURL string
	// APIKey, if set, is sent as a bearer token.
	APIKey string
	// Models maps the network's model names to the server's. Empty: New asks
	// the server (GET BaseURL/models) and serves its models under their own names.
	Models map[string]string
	// CacheSalt sends each request's per-client salt as cache_salt (vLLM).
	// Leave it off for servers that reject unknown fields.
	CacheSalt bool
	// Client makes the HTTP requests; nil: a client of this engine's own, with
	// no overall timeout (answers stream for as long as they take) and enough
	// idle connections for many concurrent requests to one server.
	Client *http.Client
	// MaxResponse limits a non-streamed answer and each streamed event, in
	// bytes; 0 means DefaultMaxResponse.
	MaxResponse int64
}

// Engine is an engine.Engine backed by an OpenAI-compatible HTTP server.
// It is safe for concurrent use.
type Engine struct {
	base     string            // BaseURL without a trailing slash
	apiKey   string            // bearer token, or ""
	salt     bool              // send cache_salt
	client   *http.Client      //
	own      bool              // client was made by New, so Close may drop its connections
	max      int64             // MaxResponse, defaulted
	upstream map[string]string // network name → server name
	models   []engine.Model    // sorted by ID
}

var _ engine.Engine = (*Engine)(nil)

// New returns an engine for the server cfg describes. When cfg.Models is
// empty it asks the server which models it serves, and fails if it cannot
// tell; otherwise it makes no request.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("remote: base URL %q: want http(s)://host[:port]/path", cfg.BaseURL)
	}
	if cfg.MaxResponse < 0 {
		return nil, fmt.Errorf("remote: MaxResponse %d is negative", cfg.MaxResponse)
	}
	e := &Engine{
		base:     strings.TrimRight(cfg.BaseURL, "/"),
		apiKey:   cfg.APIKey,
		salt:     cfg.CacheSalt,
		client:   cfg.Client,
		max:      cfg.MaxResponse,
		upstream: make(map[string]string),
	}
	if e.max == 0 {
		e.max = DefaultMaxResponse
	}
	if e.client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// A worker sends many concurrent requests to one server; the default
		// of two idle connections per host would redial for most of them.
		t.MaxIdleConnsPerHost = 256
		// No redirects: prompts go only to the endpoint the worker attests.
		e.client = &http.Client{Transport: t, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
			return fmt.Errorf("remote: engine redirected to %s; prompts go only to %s", r.URL.Redacted(), e.Endpoint())
		}}
		e.own = true
	}
	if len(cfg.Models) > 0 {
		for name, up := range cfg.Models {
			if name == "" || up == "" {
				return nil, fmt.Errorf("remote: model mapping %q → %q: names must not be empty", name, up)
			}
			e.upstream[name] = up
			m := engine.Model{ID: name}
			if up != name {
				m.Upstream = up
			}
			e.models = append(e.models, m)
		}
	} else if err := e.discover(ctx); err != nil {
		return nil, err
	}
	slices.SortFunc(e.models, func(a, b engine.Model) int { return strings.Compare(a.ID, b.ID) })
	return e, nil
}

// discover fills e.upstream and e.models from GET {base}/models.
func (e *Engine) discover(ctx context.Context) error {
	where := e.base + "/models"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, where, nil)
	if err != nil {
		return fmt.Errorf("engine at %s: %w", where, err)
	}
	e.authorize(req)
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("engine at %s: listing models: %w", where, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, e.max+1))
	if err != nil {
		return fmt.Errorf("engine at %s: listing models: %w", where, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("engine at %s: listing models: HTTP %d: %s", where, resp.StatusCode, errorMessage(body))
	}
	if int64(len(body)) > e.max {
		return fmt.Errorf("engine at %s: model list exceeds %d bytes", where, e.max)
	}
	var list struct {
		Data []struct {
			ID string `json:"id"`
			// MaxModelLen is vLLM's and SGLang's context length; others omit it.
			MaxModelLen int `json:"max_model_len"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("engine at %s: model list is not OpenAI's shape: %w", where, err)
	}
	for _, m := range list.Data {
		if m.ID == "" {
			return fmt.Errorf("engine at %s: model list has an entry without an id", where)
		}
		if _, dup := e.upstream[m.ID]; dup {
			continue
		}
		e.upstream[m.ID] = m.ID
		e.models = append(e.models, engine.Model{ID: m.ID, ContextLength: m.MaxModelLen})
	}
	if len(e.models) == 0 {
		return fmt.Errorf("engine at %s: serves no models", where)
	}
	return nil
}

// Models lists the models this engine serves under the network's names.
// Hashes are unknown: the server does not say which weights it loaded.
func (e *Engine) Models() []engine.Model { return slices.Clone(e.models) }

// Endpoint returns the server's base URL, without any credentials in it:
// where every prompt goes.
func (e *Engine) Endpoint() string {
	u, err := url.Parse(e.base)
	if err != nil { // New parsed it
		return e.base
	}
	u.User = nil
	return u.String()
}

// Close drops idle connections to the server. It does not touch a client
// passed in Config.Client.
func (e *Engine) Close() error {
	if e.own {
		e.client.CloseIdleConnections()
	}
	return nil
}

func (e *Engine) authorize(req *http.Request) {
	if e.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.apiKey)
	}
}

// errorMessage extracts the message of an error body in the shapes
// OpenAI-compatible servers use: {"error":{"message":…}} (OpenAI, vLLM,
// llama.cpp, Ollama), {"error":"…"}, or {"message":…} (older vLLM). Anything
// else is quoted, shortened.
func errorMessage(body []byte) string {
	var e struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil {
		var inner struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case json.Unmarshal(e.Error, &inner) == nil && inner.Message != "":
			return inner.Message
		case json.Unmarshal(e.Error, &s) == nil && s != "":
			return s
		case e.Message != "":
			return e.Message
		}
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "no error message"
	}
	return fmt.Sprintf("%q", s)
}

// ErrNoUsage is wrapped in Run's error when the server's answer carries no
// usage report (for a stream: no usage chunk before it ended), so the tokens
// it served cannot be counted.
var ErrNoUsage = errors.New("engine reported no usage")
