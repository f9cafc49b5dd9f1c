package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxBody bounds what is read of one answer, or of one streamed event.
const maxBody = 16 << 20

// sample is what one request measured.
type sample struct {
	stream     bool
	latency    time.Duration
	ttft       time.Duration // streams with content only; 0: none
	prompt     uint64
	completion uint64
	kind       string // error kind; empty: success
	message    string // the error's text
}

// chatRequest is the body of a chat completion request.
type chatRequest struct {
	Model         string         `json:"model"`
	Messages      []chatMessage  `json:"messages"`
	MaxTokens     int            `json:"max_tokens"`
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions *streamOptions `json:"stream_options,omitempty"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// usage is what the server reports; only the counts are read.
type usage struct {
	PromptTokens     uint64 `json:"prompt_tokens"`
	CompletionTokens uint64 `json:"completion_tokens"`
}

// answer is a chat completion, whole or one chunk of a stream, or an
// error event in a stream.
type answer struct {
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	} `json:"choices"`
	Usage *usage    `json:"usage"`
	Error *apiError `json:"error"`
}

// apiError is OpenAI's error object; vLLM sends a number as its code.
type apiError struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
}

// name is the error's code (a string or number), else its type.
func (e *apiError) name() string {
	var s string
	if json.Unmarshal(e.Code, &s) == nil && s != "" {
		return s
	}
	if c := strings.TrimSpace(string(e.Code)); c != "" && c != "null" {
		return c
	}
	return e.Type
}

// words is the vocabulary of generated prompts.
var words = strings.Fields(`the of and to in is that for it as was with be by on not he this are or his from at which
but have an they you were her she there been one all we their has would when if so no will more can out up about
into them some could him what time than other only new two may first then any these do its like over such our
light water river stone cloud field music garden window morning letter city market bridge forest ocean mountain`)

// prompt returns request i's prompt: n words, the first of them its number,
// so that no two prompts share a long prefix.
func prompt(i, n int) string {
	r := rand.New(rand.NewPCG(uint64(i), 0x636f636f6f6e))
	var b strings.Builder
	b.WriteString(strconv.Itoa(i))
	for range n - 1 {
		b.WriteByte(' ')
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.String()
}

// do sends request i and measures it.
func do(ctx context.Context, cfg *Config, i int) sample {
	s := sample{stream: streams(i, cfg.StreamShare)}
	req := chatRequest{Model: cfg.Model, Messages: []chatMessage{{"user", prompt(i, cfg.PromptWords)}}, MaxTokens: cfg.MaxTokens, Stream: s.stream}
	if s.stream {
		req.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	hr, _ := http.NewRequestWithContext(ctx, http.MethodPost, cfg.BaseURL+"/chat/completions", bytes.NewReader(body))
	hr.Header.Set("Content-Type", "application/json")
	if cfg.APIKey != "" {
		hr.Header.Set("Authorization", "Bearer "+cfg.APIKey)
	}

	start := time.Now()
	fail := func(kind string, err error) sample {
		s.latency = time.Since(start)
		s.kind, s.message = kind, err.Error()
		if ctx.Err() == context.DeadlineExceeded {
			s.kind = "timeout"
		}
		return s
	}
	resp, err := cfg.Client.Do(hr)
	if err != nil {
		return fail(networkKind(err), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		kind, msg := httpKind(resp.StatusCode, b)
		return fail(kind, errors.New(msg))
	}

	var u *usage
	if s.stream {
		u, err = readStream(resp.Body, func() {
			if s.ttft == 0 {
				s.ttft = time.Since(start)
			}
		})
		// Read on to the end of the body, as SDKs do: closing it early
		// drops the connection, which relays in between see as the
		// client going away mid-answer.
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	} else {
		var a answer
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		switch {
		case rerr != nil:
			err = rerr
		case json.Unmarshal(b, &a) != nil:
			err = &protocolError{"bad JSON", fmt.Errorf("answer is not JSON: %.80q", b)}
		default:
			u = a.Usage
		}
	}
	if err != nil {
		var pe *protocolError
		var se *streamError
		switch {
		case errors.As(err, &pe):
			return fail("protocol: "+pe.kind, pe.err)
		case errors.As(err, &se):
			return fail("stream: "+se.e.name(), errors.New(se.e.Message))
		default:
			return fail(networkKind(err), err)
		}
	}
	s.latency = time.Since(start)
	if u == nil {
		return fail("protocol: no usage", errors.New("the answer reports no usage"))
	}
	s.prompt, s.completion = u.PromptTokens, u.CompletionTokens
	return s
}

// readStream reads an SSE answer to its [DONE], calling first at each
// chunk with content, and returns the usage it reported.
func readStream(body io.Reader, first func()) (*usage, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxBody)
	var u *usage
	for sc.Scan() {
		line := sc.Bytes()
		data, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue // comments, event names, blank separators
		}
		data = bytes.TrimSpace(data)
		if string(data) == "[DONE]" {
			return u, nil
		}
		var a answer
		if err := json.Unmarshal(data, &a); err != nil {
			return nil, &protocolError{"bad JSON", fmt.Errorf("event is not JSON: %.80q", data)}
		}
		if a.Error != nil {
			return nil, &streamError{a.Error}
		}
		for _, c := range a.Choices {
			if c.Delta.Content != "" {
				first()
				break
			}
		}
		if a.Usage != nil {
			u = a.Usage
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, &protocolError{"stream cut", errors.New("the stream ended without [DONE]")}
}

// protocolError is an answer that is not in OpenAI's wire format.
type protocolError struct {
	kind string
	err  error
}

func (e *protocolError) Error() string { return e.err.Error() }

// streamError is an error event in a stream that had begun.
type streamError struct{ e *apiError }

func (e *streamError) Error() string { return e.e.Message }

// httpKind names an HTTP error by its status and OpenAI error code, and
// returns its message.
func httpKind(status int, body []byte) (kind, msg string) {
	kind = "http " + strconv.Itoa(status)
	var b struct {
		Error *apiError `json:"error"`
	}
	if json.Unmarshal(body, &b) == nil && b.Error != nil {
		if n := b.Error.name(); n != "" {
			kind += " " + n
		}
		return kind, b.Error.Message
	}
	return kind, strings.TrimSpace(string(body))
}

// networkKind names an error of the connection.
func networkKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "network: connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "network: connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "network: connection closed"
	}
	return "network: other"
}

// getJSON decodes the JSON answer to GET cfg.BaseURL+path into v.
func getJSON(ctx context.Context, cfg *Config, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.BaseURL+path, nil)
	if err != nil {
		return err
	}
	if cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.APIKey)
	}
	resp, err := cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		kind, msg := httpKind(resp.StatusCode, b)
		return fmt.Errorf("GET %s: %s: %s", path, kind, msg)
	}
	return json.Unmarshal(b, v)
}
