package remote

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/price"
)

// Run sends req to the server and relays its answer to emit, as the
// engine.Engine contract says. The server's errors are mapped: 404 to
// engine.ErrUnknownModel, other client errors to *engine.BadRequestError
// (except 401, 403, 408 and 429, which are about this worker or the server's
// load, not the request), anything else to a plain error. Cancelling ctx
// cancels the request to the server.
func (e *Engine) Run(ctx context.Context, req *engine.Request, emit engine.Emit) (price.Usage, error) {
	upstream, ok := e.upstream[req.Model]
	if !ok {
		return price.Usage{}, fmt.Errorf("%w %q", engine.ErrUnknownModel, req.Model)
	}
	if req.Kind != engine.Chat && req.Kind != engine.Completion {
		return price.Usage{}, fmt.Errorf("remote: request kind %q is not served", req.Kind)
	}
	body, err := e.rewrite(req, upstream)
	if err != nil {
		return price.Usage{}, err
	}
	where := e.base + "/" + string(req.Kind)
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, where, bytes.NewReader(body))
	if err != nil {
		return price.Usage{}, fmt.Errorf("engine at %s: %w", where, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if req.Stream {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	e.authorize(hreq)
	resp, err := e.client.Do(hreq)
	if err != nil {
		return price.Usage{}, fmt.Errorf("engine at %s: %w", where, err)
	}
	// Closing the body before the end also drops the connection, so an early
	// return stops the server's generation even if ctx lives on.
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return price.Usage{}, statusError(where, req.Model, resp)
	}
	r := &relay{where: where, max: e.max, emit: emit}
	r.id, _ = json.Marshal(req.ID)
	r.model, _ = json.Marshal(req.Model)
	if req.Created != 0 {
		r.created, _ = json.Marshal(req.Created)
	}
	if req.Stream {
		if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "application/json") {
			return price.Usage{}, fmt.Errorf("engine at %s: answered a streaming request with %s, not server-sent events", where, ct)
		}
		return r.stream(resp.Body)
	}
	return r.whole(resp)
}

// rewrite returns req's body as the server must see it.
func (e *Engine) rewrite(req *engine.Request, upstream string) ([]byte, error) {
	var body map[string]json.RawMessage
	if err := json.Unmarshal(req.Body, &body); err != nil || body == nil {
		return nil, &engine.BadRequestError{Msg: "request body is not a JSON object"}
	}
	body["model"], _ = json.Marshal(upstream)
	if req.Stream {
		body["stream"] = json.RawMessage("true")
		opts := make(map[string]json.RawMessage)
		if raw, ok := body["stream_options"]; ok && !isNull(raw) {
			if err := json.Unmarshal(raw, &opts); err != nil || opts == nil {
				return nil, &engine.BadRequestError{Msg: `field "stream_options" must be an object`}
			}
		}
		// The token counts come from the server's usage chunk, whatever the
		// app asked for; the worker decides what the app sees.
		opts["include_usage"] = json.RawMessage("true")
		body["stream_options"], _ = json.Marshal(opts)
	} else {
		body["stream"] = json.RawMessage("false")
		delete(body, "stream_options") // vLLM refuses it on a request that does not stream
	}
	// The limit is the worker's (the header's, or its default cap): a body
	// without one would let the server generate up to its context length.
	if req.MaxTokens > 0 {
		n, _ := json.Marshal(req.MaxTokens)
		body["max_tokens"] = n
		if _, ok := body["max_completion_tokens"]; ok {
			body["max_completion_tokens"] = n
		}
	}
	// The salt is the worker's to choose: an app must not pick another
	// tenant's and time its cache hits.
	delete(body, "cache_salt")
	if e.salt && req.CacheSalt != "" {
		body["cache_salt"], _ = json.Marshal(req.CacheSalt)
	}
	return json.Marshal(body)
}

// statusError maps an HTTP error from the server for a request for model.
func statusError(where, model string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := errorMessage(b)
	switch s := resp.StatusCode; {
	case s == http.StatusNotFound:
		return fmt.Errorf("%w %q (engine at %s: %s)", engine.ErrUnknownModel, model, where, msg)
	case s == http.StatusUnauthorized, s == http.StatusForbidden,
		s == http.StatusRequestTimeout, s == http.StatusTooManyRequests:
		// The app's request may be fine; another worker may serve it.
		return fmt.Errorf("engine at %s: HTTP %d: %s", where, s, msg)
	case s >= 400 && s < 500:
		return &engine.BadRequestError{Msg: msg}
	default:
		return fmt.Errorf("engine at %s: HTTP %d: %s", where, s, msg)
	}
}

// relay turns the server's response objects into the network's.
type relay struct {
	where string
	max   int64
	emit  engine.Emit

	id, model, created json.RawMessage // what every object says; created may be nil

	usage   price.Usage
	counted bool // usage was reported
}

// stream relays an SSE answer event by event.
func (r *relay) stream(body io.Reader) (price.Usage, error) {
	ev := newEvents(body, r.max)
	for {
		data, err := ev.next()
		if err == io.EOF {
			// Some servers (older llama.cpp) end without [DONE]; the usage
			// chunk, which comes after the last token, still proves the
			// answer complete. Without it, the answer is cut or uncounted.
			break
		}
		if err != nil {
			return price.Usage{}, fmt.Errorf("engine at %s: reading stream: %w", r.where, err)
		}
		if string(data) == "[DONE]" {
			break
		}
		out, err := r.chunk(data)
		if err != nil {
			return price.Usage{}, err
		}
		if out == nil {
			continue
		}
		if err := r.emit(out); err != nil {
			return price.Usage{}, err
		}
	}
	if !r.counted {
		return price.Usage{}, fmt.Errorf("engine at %s: %w for the stream", r.where, ErrNoUsage)
	}
	return r.usage, nil
}

// chunk rewrites one streamed object, or returns nil for a usage-only chunk,
// which the worker replaces with its own.
func (r *relay) chunk(data []byte) ([]byte, error) {
	out, o, ok := rewrite(data, r.id, r.model, r.created, true)
	if !ok {
		return nil, fmt.Errorf("engine at %s: stream event is not a JSON object: %.100q", r.where, data)
	}
	if err := r.failed(o, data); err != nil {
		return nil, err
	}
	if o.usage != nil {
		counted, err := r.count(o.usage)
		if err != nil {
			return nil, err
		}
		if counted && isEmptyArray(o.choices) {
			return nil, nil
		}
	}
	return out, nil
}

// whole relays a non-streamed answer, usage included.
func (r *relay) whole(resp *http.Response) (price.Usage, error) {
	if resp.ContentLength > r.max {
		return price.Usage{}, fmt.Errorf("engine at %s: answer of %d bytes exceeds the limit of %d", r.where, resp.ContentLength, r.max)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, r.max+1))
	if err != nil {
		return price.Usage{}, fmt.Errorf("engine at %s: reading answer: %w", r.where, err)
	}
	if int64(len(b)) > r.max {
		return price.Usage{}, fmt.Errorf("engine at %s: answer exceeds the limit of %d bytes", r.where, r.max)
	}
	out, o, ok := rewrite(b, r.id, r.model, r.created, false)
	if !ok {
		return price.Usage{}, fmt.Errorf("engine at %s: answer is not a JSON object: %.100q", r.where, b)
	}
	if err := r.failed(o, b); err != nil {
		return price.Usage{}, err
	}
	if _, err := r.count(o.usage); err != nil {
		return price.Usage{}, err
	}
	if !r.counted {
		return price.Usage{}, fmt.Errorf("engine at %s: %w in the answer", r.where, ErrNoUsage)
	}
	if err := r.emit(out); err != nil {
		return price.Usage{}, err
	}
	return r.usage, nil
}

// failed returns the error a server reported inside a 200 answer or stream
// ({"error":{…}}, or vLLM's older {"object":"error",…}), or nil.
func (r *relay) failed(o object, data []byte) error {
	if !isNull(o.error) || string(o.object) == `"error"` {
		return fmt.Errorf("engine at %s: failed mid-answer: %s", r.where, errorMessage(data))
	}
	return nil
}

// count records the usage object raw, if it is one, and reports whether it was.
// The last report wins: with vLLM's continuous_usage_stats every chunk
// carries the running total.
func (r *relay) count(raw json.RawMessage) (bool, error) {
	if isNull(raw) {
		return false, nil
	}
	var u struct {
		PromptTokens        *uint64 `json:"prompt_tokens"`
		CompletionTokens    *uint64 `json:"completion_tokens"`
		PromptTokensDetails *struct {
			CachedTokens uint64 `json:"cached_tokens"`
		} `json:"prompt_tokens_details"`
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		return false, fmt.Errorf("engine at %s: usage %.100q: %w", r.where, raw, err)
	}
	if u.PromptTokens == nil || u.CompletionTokens == nil {
		return false, fmt.Errorf("engine at %s: usage %.100q lacks prompt_tokens or completion_tokens", r.where, raw)
	}
	r.usage = price.Usage{PromptTokens: *u.PromptTokens, CompletionTokens: *u.CompletionTokens}
	if d := u.PromptTokensDetails; d != nil {
		r.usage.CachedTokens = d.CachedTokens
	}
	r.counted = true
	return true, nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// isEmptyArray reports whether raw is absent, null or [].
func isEmptyArray(raw json.RawMessage) bool {
	if isNull(raw) {
		return true
	}
	raw = bytes.TrimSpace(raw)
	return raw[0] == '[' && len(bytes.TrimSpace(raw[1:])) == 1
}
