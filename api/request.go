package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cocoon-go/cocoon/seal"
)

// Limits on what an app may send.
const (
	MaxBodyBytes = 4 << 20 // a request body over this is refused with 413
	MaxStops     = 4
	MaxMessages  = 2048
)

// Endpoints of the OpenAI API that Cocoon serves.
const (
	EndpointChat       = "chat/completions"
	EndpointCompletion = "completions"
)

// Request is the part of a chat or text completion request that Cocoon reads.
// Fields it does not know (tools, response_format, …) stay in the raw body and
// pass through to engines that understand them.
type Request struct {
	Endpoint string // EndpointChat or EndpointCompletion

	Model               string         `json:"model"`
	Messages            []Message      `json:"messages"`
	Prompt              Prompt         `json:"prompt"`
	Stream              bool           `json:"stream"`
	StreamOptions       *StreamOptions `json:"stream_options"`
	MaxTokens           *int           `json:"max_tokens"`
	MaxCompletionTokens *int           `json:"max_completion_tokens"`
	Temperature         *float64       `json:"temperature"`
	TopP                *float64       `json:"top_p"`
	Seed                *int64         `json:"seed"`
	Stop                Stop           `json:"stop"`
	N                   *int           `json:"n"`
}

// StreamOptions are the options of a streaming request.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// Message is one chat message. Content may be a string or a list of text
// parts, as OpenAI allows; the parts are joined.
type Message struct {
	Role    string  `json:"role"`
	Content Content `json:"content"`
}

// Content is message content reduced to its text.
type Content string

// UnmarshalJSON accepts a string, null, or an array of {"type":"text","text":…} parts.
func (c *Content) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*c = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = Content(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return &fieldError{"messages", "message content must be a string or an array of content parts"}
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return &fieldError{"messages", fmt.Sprintf("message content part type %q is not supported", p.Type)}
		}
		sb.WriteString(p.Text)
	}
	*c = Content(sb.String())
	return nil
}

// Prompt is the prompt of a text completion: a string or an array of one string.
type Prompt string

// UnmarshalJSON accepts a string or an array holding one string.
func (p *Prompt) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*p = Prompt(s)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return &fieldError{"prompt", "field \"prompt\" must be a string or an array of strings"}
	}
	if len(list) != 1 {
		return &fieldError{"prompt", fmt.Sprintf("exactly one prompt is supported, got %d", len(list))}
	}
	*p = Prompt(list[0])
	return nil
}

// Stop is a stop sequence or a list of them.
type Stop []string

// UnmarshalJSON accepts null, a string, or an array of strings.
func (s *Stop) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = Stop{one}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return &fieldError{"stop", "field \"stop\" must be a string or an array of strings"}
	}
	*s = list
	return nil
}

// ParseRequest decodes and validates the body of a request to endpoint.
// Errors are *Error values with status 400 that name the offending field.
func ParseRequest(endpoint string, body []byte) (*Request, error) {
	if endpoint != EndpointChat && endpoint != EndpointCompletion {
		return nil, &Error{Status: 404, Type: TypeNotFound, Message: "unknown endpoint " + endpoint}
	}
	r := &Request{Endpoint: endpoint}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(r); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, BadRequest("", "request body has data after the JSON object")
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// jsonError turns a decoding error into a 400 that names the field.
func jsonError(err error) *Error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		return BadRequest(typeErr.Field, fmt.Sprintf("field %q: expected %s, got JSON %s", typeErr.Field, typeErr.Type, typeErr.Value))
	case errors.As(err, &syntaxErr):
		return BadRequest("", fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, err))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("", "request body is empty or truncated JSON")
	}
	var fe *fieldError
	if errors.As(err, &fe) {
		return BadRequest(fe.field, fe.msg)
	}
	return BadRequest("", "invalid request: "+err.Error())
}

// fieldError is a decoding error that knows its field.
type fieldError struct{ field, msg string }

func (e *fieldError) Error() string { return e.msg }

func (r *Request) validate() error {
	if r.Model == "" {
		return BadRequest("model", "field \"model\" is required")
	}
	if r.Endpoint == EndpointChat {
		if len(r.Messages) == 0 {
			return BadRequest("messages", "field \"messages\" must be a non-empty array")
		}
		if len(r.Messages) > MaxMessages {
			return BadRequest("messages", fmt.Sprintf("at most %d messages are allowed", MaxMessages))
		}
		for i, m := range r.Messages {
			switch m.Role {
			case "system", "developer", "user", "assistant", "tool":
			default:
				return BadRequest(fmt.Sprintf("messages[%d].role", i), fmt.Sprintf("messages[%d].role: %q is not a valid role", i, m.Role))
			}
		}
	}
	if r.Endpoint == EndpointCompletion && r.Messages != nil {
		return BadRequest("messages", "field \"messages\" belongs to /v1/chat/completions")
	}
	if err := checkLimit("max_tokens", r.MaxTokens); err != nil {
		return err
	}
	if err := checkLimit("max_completion_tokens", r.MaxCompletionTokens); err != nil {
		return err
	}
	if t := r.Temperature; t != nil && (*t < 0 || *t > 2) {
		return BadRequest("temperature", "field \"temperature\" must be between 0 and 2")
	}
	if p := r.TopP; p != nil && (*p <= 0 || *p > 1) {
		return BadRequest("top_p", "field \"top_p\" must be greater than 0 and at most 1")
	}
	if len(r.Stop) > MaxStops {
		return BadRequest("stop", fmt.Sprintf("at most %d stop sequences are allowed", MaxStops))
	}
	for _, s := range r.Stop {
		if s == "" {
			return BadRequest("stop", "stop sequences must not be empty")
		}
	}
	if r.N != nil && *r.N != 1 {
		return BadRequest("n", "only n=1 is supported")
	}
	if r.StreamOptions != nil && !r.Stream {
		return BadRequest("stream_options", "field \"stream_options\" is only allowed when \"stream\" is true")
	}
	return nil
}

// checkLimit refuses a completion limit outside 1 to seal.MaxTokenLimit. A
// value too large for an int already failed to decode, naming the field.
func checkLimit(param string, v *int) error {
	if v != nil && (*v < 1 || uint64(*v) > seal.MaxTokenLimit) {
		return BadRequest(param, fmt.Sprintf("field %q must be between 1 and %d", param, seal.MaxTokenLimit))
	}
	return nil
}

// Limit returns the most completion tokens the app allows, or 0 if it set
// none. After ParseRequest it is at most seal.MaxTokenLimit.
func (r *Request) Limit() int {
	switch {
	case r.MaxCompletionTokens != nil:
		return *r.MaxCompletionTokens
	case r.MaxTokens != nil:
		return *r.MaxTokens
	}
	return 0
}

// IncludeUsage reports whether a streaming app asked for a final usage chunk.
func (r *Request) IncludeUsage() bool {
	return r.StreamOptions != nil && r.StreamOptions.IncludeUsage
}
