package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// Error types, as OpenAI names them.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeNotFound       = "not_found_error"
	TypeInsufficient   = "insufficient_quota"
	TypeServer         = "server_error"
	TypeUnavailable    = "service_unavailable"
	// TypeRateLimit is OpenAI's type of a 429 for too many requests (code
	// CodeRateLimit); over quota is TypeInsufficient.
	TypeRateLimit = "requests"
)

// CodeRateLimit is the code of a 429: try again after Retry-After.
const CodeRateLimit = "rate_limit_exceeded"

// RetryAfter is the Retry-After (seconds) WriteError sends with a 429 that
// has none set: OpenAI's SDKs wait that long before they retry.
const RetryAfter = "1"

// Error is an error an app sees, in OpenAI's JSON shape:
// {"error": {"message", "type", "param", "code"}} with an HTTP status.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   string `json:"param,omitempty"`
	Code    string `json:"code,omitempty"`
	// Sealed is set only between Cocoon's roles, never for an app: the
	// worker's full error, sealed to the client as the final chunk of the
	// answer (seal.WorkerSession.SealError), so that text quoting a prompt
	// or coming from the engine crosses the proxy encrypted. The client
	// opens it and shows the app what is inside.
	Sealed []byte `json:"sealed,omitempty"`
	// RetryAfter, if positive, is sent as the Retry-After header (seconds):
	// when a refused request may succeed if sent again.
	RetryAfter int64 `json:"-"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Type, e.Message)
}

// BadRequest is a 400 about param.
func BadRequest(param, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: TypeInvalidRequest, Param: param, Message: msg}
}

// RateLimited is a 429 (rate_limit_exceeded): too many requests at once for
// the capacity behind the server; the caller should retry after Retry-After.
func RateLimited(format string, args ...any) *Error {
	return Errorf(http.StatusTooManyRequests, TypeRateLimit, CodeRateLimit, format, args...)
}

// Errorf builds an Error with a formatted message.
func Errorf(status int, typ, code, format string, args ...any) *Error {
	return &Error{Status: status, Type: typ, Code: code, Message: fmt.Sprintf(format, args...)}
}

// MarshalError encodes e as OpenAI's error body.
func MarshalError(e *Error) []byte {
	b, _ := json.Marshal(struct {
		Error *Error `json:"error"`
	}{e})
	return b
}

// ParseError decodes an error body written by MarshalError.
func ParseError(status int, b []byte) *Error {
	var body struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(b, &body) != nil || body.Error == nil || body.Error.Message == "" {
		return &Error{Status: status, Type: TypeServer, Message: fmt.Sprintf("unexpected response (HTTP %d)", status)}
	}
	body.Error.Status = status
	return body.Error
}

// WriteError writes e as an HTTP response. A 429 always carries
// Retry-After (RetryAfter unless the caller set one), so that every caller
// that answers a 429, or passes one on, tells the app when to retry.
func WriteError(w http.ResponseWriter, e *Error) {
	NoteError(w, e)
	w.Header().Set("Content-Type", "application/json")
	switch {
	case e.RetryAfter > 0:
		w.Header().Set("Retry-After", strconv.FormatInt(e.RetryAfter, 10))
	case e.Status == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "":
		w.Header().Set("Retry-After", RetryAfter)
	}
	w.WriteHeader(e.Status)
	w.Write(MarshalError(e))
	w.Write([]byte("\n"))
}

// An ErrorNoter is a response writer that wants to know which error its
// response carries: the metrics of a role count requests by error code.
type ErrorNoter interface {
	NoteError(e *Error)
}

// NoteError tells w, if it is an ErrorNoter, that its response carries e.
// WriteError does; a role calls it for an error it sends after the answer
// has begun (an error record, an SSE error event), which the HTTP status
// does not show.
func NoteError(w http.ResponseWriter, e *Error) {
	if n, ok := w.(ErrorNoter); ok {
		n.NoteError(e)
	}
}
