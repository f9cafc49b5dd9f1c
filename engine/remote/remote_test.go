package remote_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/engine/remote"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/price"
)

const prompt = "Say something about foxes" // 4 tokens to the fakes

// request builds a request for model; extra is spliced into the JSON body.
func request(kind engine.Kind, model string, stream bool, extra string) *engine.Request {
	var body string
	if kind == engine.Chat {
		body = fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":%q}],"stream":%t%s}`, model, prompt, stream, extra)
	} else {
		body = fmt.Sprintf(`{"model":%q,"prompt":%q,"stream":%t%s}`, model, prompt, stream, extra)
	}
	return &engine.Request{
		Kind: kind, ID: "chatcmpl-net-1", Created: 1234, Model: model, Stream: stream,
		Body: []byte(body), CacheSalt: "salt-of-client-a",
	}
}

// collect runs req on e and returns the decoded emitted objects.
func collect(t *testing.T, e engine.Engine, req *engine.Request) ([]map[string]any, price.Usage, error) {
	t.Helper()
	var objs []map[string]any
	u, err := e.Run(context.Background(), req, func(data []byte) error {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("emitted %q: %v", data, err)
		}
		objs = append(objs, m)
		return nil
	})
	return objs, u, err
}

func newEngine(t *testing.T, cfg remote.Config) *remote.Engine {
	t.Helper()
	e, err := remote.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func fakeServer(t *testing.T, opts enginetest.FakeOptions) *enginetest.FakeServer {
	t.Helper()
	s := enginetest.NewFakeServer(opts)
	t.Cleanup(s.Close)
	return s
}

// text joins the content of objs, whichever kind they are.
func text(objs []map[string]any) string {
	var sb strings.Builder
	for _, o := range objs {
		for _, c := range o["choices"].([]any) {
			c := c.(map[string]any)
			if d, ok := c["delta"].(map[string]any); ok {
				s, _ := d["content"].(string)
				sb.WriteString(s)
			}
			if m, ok := c["message"].(map[string]any); ok {
				sb.WriteString(m["content"].(string))
			}
			if s, ok := c["text"].(string); ok {
				sb.WriteString(s)
			}
		}
	}
	return sb.String()
}

func lastBody(t *testing.T, s *enginetest.FakeServer) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(s.LastBody(), &m); err != nil {
		t.Fatalf("server got %q: %v", s.LastBody(), err)
	}
	return m
}

var wantUsage = price.Usage{PromptTokens: 4, CompletionTokens: enginetest.Tokens(enginetest.DefaultAnswer)}

func TestStream(t *testing.T) {
	for _, kind := range []engine.Kind{engine.Chat, engine.Completion} {
		t.Run(string(kind), func(t *testing.T) {
			s := fakeServer(t, enginetest.FakeOptions{})
			e := newEngine(t, remote.Config{BaseURL: s.URL})
			objs, u, err := collect(t, e, request(kind, enginetest.DefaultModel, true, ""))
			if err != nil {
				t.Fatal(err)
			}
			if u != wantUsage {
				t.Errorf("usage = %+v, want %+v", u, wantUsage)
			}
			if got := text(objs); got != enginetest.DefaultAnswer {
				t.Errorf("text = %q, want %q", got, enginetest.DefaultAnswer)
			}
			// One chunk per word, a finish chunk, and for chat a role chunk;
			// the usage-only chunk is not among them.
			want := int(wantUsage.CompletionTokens) + 1
			if kind == engine.Chat {
				want++
			}
			if len(objs) != want {
				t.Errorf("%d chunks, want %d", len(objs), want)
			}
			for i, o := range objs {
				if o["id"] != "chatcmpl-net-1" || o["model"] != enginetest.DefaultModel || o["created"] != 1234.0 {
					t.Errorf("chunk %d: id %v, model %v, created %v", i, o["id"], o["model"], o["created"])
				}
				if _, ok := o["usage"]; ok {
					t.Errorf("chunk %d carries usage: %v", i, o)
				}
				if len(o["choices"].([]any)) == 0 {
					t.Errorf("chunk %d has no choices: %v", i, o)
				}
			}
			if last := objs[len(objs)-1]["choices"].([]any)[0].(map[string]any); last["finish_reason"] != "stop" {
				t.Errorf("last chunk's finish_reason = %v", last["finish_reason"])
			}
			body := lastBody(t, s)
			if body["stream"] != true || body["stream_options"].(map[string]any)["include_usage"] != true {
				t.Errorf("server got stream %v, stream_options %v", body["stream"], body["stream_options"])
			}
		})
	}
}

func TestNonStream(t *testing.T) {
	for _, kind := range []engine.Kind{engine.Chat, engine.Completion} {
		t.Run(string(kind), func(t *testing.T) {
			s := fakeServer(t, enginetest.FakeOptions{CachedTokens: 3})
			e := newEngine(t, remote.Config{BaseURL: s.URL})
			// An app's stream_options on a request that does not stream would
			// make vLLM (and the fake) answer 400.
			objs, u, err := collect(t, e, request(kind, enginetest.DefaultModel, false, `,"stream_options":{"include_usage":true}`))
			if err != nil {
				t.Fatal(err)
			}
			want := wantUsage
			want.CachedTokens = 3
			if u != want {
				t.Errorf("usage = %+v, want %+v", u, want)
			}
			if len(objs) != 1 {
				t.Fatalf("%d objects emitted, want 1", len(objs))
			}
			o := objs[0]
			if o["id"] != "chatcmpl-net-1" || o["model"] != enginetest.DefaultModel || o["created"] != 1234.0 {
				t.Errorf("id %v, model %v, created %v", o["id"], o["model"], o["created"])
			}
			if got := text(objs); got != enginetest.DefaultAnswer {
				t.Errorf("text = %q", got)
			}
			usage, _ := o["usage"].(map[string]any)
			if usage["completion_tokens"] != float64(want.CompletionTokens) {
				t.Errorf("the object's usage = %v, want it kept", o["usage"])
			}
			body := lastBody(t, s)
			if _, ok := body["stream_options"]; ok || body["stream"] != false {
				t.Errorf("server got stream %v, stream_options %v", body["stream"], body["stream_options"])
			}
		})
	}
}

func TestModelMapping(t *testing.T) {
	s := fakeServer(t, enginetest.FakeOptions{Models: []string{"org/Upstream-7B-Instruct"}})
	e := newEngine(t, remote.Config{BaseURL: s.URL, Models: map[string]string{"upstream-7b": "org/Upstream-7B-Instruct"}})
	if got := e.Models(); len(got) != 1 || got[0].ID != "upstream-7b" {
		t.Fatalf("Models() = %+v", got)
	}
	for _, stream := range []bool{true, false} {
		objs, _, err := collect(t, e, request(engine.Chat, "upstream-7b", stream, ""))
		if err != nil {
			t.Fatal(err)
		}
		if m := lastBody(t, s)["model"]; m != "org/Upstream-7B-Instruct" {
			t.Errorf("stream %t: server was asked for %v", stream, m)
		}
		for _, o := range objs {
			if o["model"] != "upstream-7b" {
				t.Errorf("stream %t: app sees model %v", stream, o["model"])
			}
		}
	}
	// Only network names are served; the server is not even asked.
	before := s.Requests()
	for _, name := range []string{"org/Upstream-7B-Instruct", "other"} {
		_, _, err := collect(t, e, request(engine.Chat, name, true, ""))
		if !errors.Is(err, engine.ErrUnknownModel) {
			t.Errorf("model %q: err = %v, want ErrUnknownModel", name, err)
		}
	}
	if s.Requests() != before {
		t.Errorf("server got requests for unknown models")
	}
}

func TestStreamOptionsKeptAndUsageForced(t *testing.T) {
	s := fakeServer(t, enginetest.FakeOptions{})
	e := newEngine(t, remote.Config{BaseURL: s.URL})
	// vLLM's continuous_usage_stats puts the running usage on every chunk:
	// the chunks are relayed without it, and the last count wins.
	req := request(engine.Chat, enginetest.DefaultModel, true, `,"stream_options":{"include_usage":false,"continuous_usage_stats":true}`)
	objs, u, err := collect(t, e, req)
	if err != nil {
		t.Fatal(err)
	}
	opts := lastBody(t, s)["stream_options"].(map[string]any)
	if opts["include_usage"] != true || opts["continuous_usage_stats"] != true {
		t.Errorf("server got stream_options %v", opts)
	}
	if u != wantUsage {
		t.Errorf("usage = %+v, want %+v", u, wantUsage)
	}
	for i, o := range objs {
		if _, ok := o["usage"]; ok {
			t.Errorf("chunk %d carries usage: %v", i, o)
		}
	}
	if got := text(objs); got != enginetest.DefaultAnswer {
		t.Errorf("text = %q", got)
	}
}

func TestCacheSalt(t *testing.T) {
	s := fakeServer(t, enginetest.FakeOptions{})
	// An app's own cache_salt never reaches the server: it could name another tenant's.
	const appSalt = `,"cache_salt":"salt-of-client-b"`
	for _, on := range []bool{true, false} {
		e := newEngine(t, remote.Config{BaseURL: s.URL, CacheSalt: on})
		for _, stream := range []bool{true, false} {
			if _, _, err := collect(t, e, request(engine.Chat, enginetest.DefaultModel, stream, appSalt)); err != nil {
				t.Fatal(err)
			}
			salt, ok := lastBody(t, s)["cache_salt"]
			if on && salt != "salt-of-client-a" || !on && ok {
				t.Errorf("CacheSalt %t, stream %t: server got cache_salt %v", on, stream, salt)
			}
		}
	}
}

func TestAPIKey(t *testing.T) {
	s := fakeServer(t, enginetest.FakeOptions{APIKey: "sk-test"})
	if _, err := remote.New(context.Background(), remote.Config{BaseURL: s.URL}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("discovery without the key: err = %v, want a 401", err)
	}
	e := newEngine(t, remote.Config{BaseURL: s.URL, APIKey: "sk-test"})
	if _, _, err := collect(t, e, request(engine.Chat, enginetest.DefaultModel, true, "")); err != nil {
		t.Fatal(err)
	}
	if got := s.LastHeader().Get("Authorization"); got != "Bearer sk-test" {
		t.Errorf("Authorization = %q", got)
	}
}

func TestUpstreamErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		check  func(error) bool
		what   string
	}{
		{404, isUnknown, "ErrUnknownModel"},
		{400, isBadRequest, "BadRequestError"},
		{422, isBadRequest, "BadRequestError"},
		{429, isPlain, "a plain error"},
		{401, isPlain, "a plain error"},
		{500, isPlain, "a plain error"},
		{503, isPlain, "a plain error"},
	} {
		for _, stream := range []bool{true, false} {
			s := fakeServer(t, enginetest.FakeOptions{FailStatus: tc.status, FailMessage: "upstream says no"})
			e := newEngine(t, remote.Config{BaseURL: s.URL, Models: map[string]string{"m": enginetest.DefaultModel}})
			n := 0
			_, err := e.Run(context.Background(), request(engine.Chat, "m", stream, ""), func([]byte) error { n++; return nil })
			if err == nil || !tc.check(err) {
				t.Errorf("HTTP %d, stream %t: err = %v, want %s", tc.status, stream, err, tc.what)
				continue
			}
			if !strings.Contains(err.Error(), "upstream says no") {
				t.Errorf("HTTP %d: error %q lacks the server's message", tc.status, err)
			}
			if n != 0 {
				t.Errorf("HTTP %d: %d objects emitted", tc.status, n)
			}
		}
	}
	// A model the mapping names but the server does not serve.
	s := fakeServer(t, enginetest.FakeOptions{})
	e := newEngine(t, remote.Config{BaseURL: s.URL, Models: map[string]string{"m": "gone"}})
	if _, _, err := collect(t, e, request(engine.Chat, "m", true, "")); !errors.Is(err, engine.ErrUnknownModel) {
		t.Errorf("model unknown upstream: err = %v", err)
	}
	// A server that is down.
	s.Close()
	if _, _, err := collect(t, e, request(engine.Chat, "m", true, "")); err == nil || !strings.Contains(err.Error(), s.URL) || !isPlain(err) {
		t.Errorf("server down: err = %v, want a plain error naming %s", err, s.URL)
	}
}

func isUnknown(err error) bool { return errors.Is(err, engine.ErrUnknownModel) }

func isBadRequest(err error) bool {
	var b *engine.BadRequestError
	return errors.As(err, &b) && b.Msg == "upstream says no"
}

func isPlain(err error) bool {
	var b *engine.BadRequestError
	return !errors.As(err, &b) && !errors.Is(err, engine.ErrUnknownModel)
}

func TestBadBody(t *testing.T) {
	s := fakeServer(t, enginetest.FakeOptions{})
	e := newEngine(t, remote.Config{BaseURL: s.URL})
	for _, body := range []string{`not json`, `null`, `[1]`, `{"model":"x","stream":true,"stream_options":3}`} {
		req := request(engine.Chat, enginetest.DefaultModel, true, "")
		req.Body = []byte(body)
		var b *engine.BadRequestError
		if _, _, err := collect(t, e, req); !errors.As(err, &b) {
			t.Errorf("body %s: err = %v, want BadRequestError", body, err)
		}
	}
	if s.Requests() != 0 {
		t.Errorf("server got %d requests", s.Requests())
	}
}

func TestCancelStopsUpstream(t *testing.T) {
	for _, stream := range []bool{true, false} {
		t.Run(fmt.Sprint("stream=", stream), func(t *testing.T) {
			s := fakeServer(t, enginetest.FakeOptions{Hang: true})
			e := newEngine(t, remote.Config{BaseURL: s.URL})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if !stream {
				go func() { // the client goes away once the request is upstream
					waitfor.Holds(func() bool { return s.Requests() > 0 })
					cancel()
				}()
			}
			done := make(chan error, 1)
			go func() {
				_, err := e.Run(ctx, request(engine.Chat, enginetest.DefaultModel, stream, ""), func([]byte) error {
					cancel() // the client went away after the first chunk
					return nil
				})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("err = %v, want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return after ctx was cancelled")
			}
			if !s.WaitCancelled(1, 5*time.Second) {
				t.Errorf("the server did not see the request end")
			}
		})
	}
}

func TestEmitErrorStopsUpstream(t *testing.T) {
	s := fakeServer(t, enginetest.FakeOptions{ChunkDelay: 5 * time.Millisecond})
	e := newEngine(t, remote.Config{BaseURL: s.URL})
	stop := errors.New("the app's connection broke")
	_, err := e.Run(context.Background(), request(engine.Chat, enginetest.DefaultModel, true, ""), func([]byte) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("err = %v, want emit's error", err)
	}
	if !s.WaitCancelled(1, 5*time.Second) {
		t.Errorf("the server did not see the request end")
	}
}

func TestOversize(t *testing.T) {
	long := strings.Repeat("word ", 100) // 500 bytes
	s := fakeServer(t, enginetest.FakeOptions{Answer: long})
	e := newEngine(t, remote.Config{BaseURL: s.URL, MaxResponse: 300})
	_, _, err := collect(t, e, request(engine.Chat, enginetest.DefaultModel, false, ""))
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("non-stream: err = %v, want a size error", err)
	}
	// Streamed, each event is small; one over the limit is refused.
	if _, _, err := collect(t, e, request(engine.Chat, enginetest.DefaultModel, true, "")); err != nil {
		t.Errorf("stream of small events: %v", err)
	}
	big := rawServer(t, "data: {\"choices\":[{\"delta\":{\"content\":\""+strings.Repeat("x", 400)+"\"}}]}\n\n")
	e = newEngine(t, remote.Config{BaseURL: big.URL, Models: map[string]string{"m": "m"}, MaxResponse: 300})
	if _, _, err := collect(t, e, request(engine.Chat, "m", true, "")); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("stream: err = %v, want a size error", err)
	}
}

func TestMissingUsage(t *testing.T) {
	s := fakeServer(t, enginetest.FakeOptions{NoUsage: true})
	e := newEngine(t, remote.Config{BaseURL: s.URL})
	n := 0
	_, err := e.Run(context.Background(), request(engine.Chat, enginetest.DefaultModel, true, ""), func([]byte) error { n++; return nil })
	if !errors.Is(err, remote.ErrNoUsage) {
		t.Errorf("stream: err = %v, want ErrNoUsage", err)
	}
	if n == 0 {
		t.Errorf("the chunks before the end were not relayed")
	}
	for _, body := range []string{
		`{"id":"x","object":"chat.completion","choices":[]}`,
		`{"id":"x","object":"chat.completion","choices":[],"usage":null}`,
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
		e := newEngine(t, remote.Config{BaseURL: srv.URL, Models: map[string]string{"m": "m"}})
		if _, _, err := collect(t, e, request(engine.Chat, "m", false, "")); !errors.Is(err, remote.ErrNoUsage) {
			t.Errorf("answer %s: err = %v, want ErrNoUsage", body, err)
		}
		srv.Close()
	}
	// Usage without the counts is no usage either.
	srv := rawServer(t, `data: {"choices":[],"usage":{"total_tokens":9}}`+"\n\ndata: [DONE]\n\n")
	e = newEngine(t, remote.Config{BaseURL: srv.URL, Models: map[string]string{"m": "m"}})
	if _, _, err := collect(t, e, request(engine.Chat, "m", true, "")); err == nil || !strings.Contains(err.Error(), "lacks") {
		t.Errorf("usage without counts: err = %v", err)
	}
}

// rawServer answers every request with the SSE text stream.
func rawServer(t *testing.T, stream string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(stream, "{") {
			w.Header().Set("Content-Type", "application/json")
		} else {
			w.Header().Set("Content-Type", "text/event-stream")
		}
		io.WriteString(w, stream)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestSSE(t *testing.T) {
	const usage = `{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":1}}}`
	for _, tc := range []struct {
		name, stream, text string
		err                string
	}{
		{"comments, other fields and CRLF",
			": keep-alive\r\nevent: message\r\nid: 7\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\r\n\r\n" +
				"data:{\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\ndata: " + usage + "\n\ndata: [DONE]\n\n", "ab", ""},
		{"data split over lines",
			"data: {\"choices\":\ndata: [{\"delta\":{\"content\":\"a\"}}]}\n\ndata: " + usage + "\n\ndata: [DONE]\n\n", "a", ""},
		{"usage with choices",
			`data: {"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":3,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":1}}}` + "\n\ndata: [DONE]\n\n", "a", ""},
		{"no [DONE] after usage", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: " + usage, "a", ""},
		{"nothing after [DONE] is read", "data: " + usage + "\n\ndata: [DONE]\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"late\"}}]}\n\n", "", ""},
		{"cut before usage", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", "a", "no usage"},
		{"error mid-stream", "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {\"error\":{\"message\":\"out of memory\",\"code\":500}}\n\n", "a", "out of memory"},
		{"vLLM's older error", "data: {\"object\":\"error\",\"message\":\"out of memory\"}\n\n", "", "out of memory"},
		{"not JSON", "data: {\"choices\n\n", "", "not a JSON object"},
		{"JSON instead of events", `{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}`, "", "not server-sent events"},
		{"negative count", `data: {"choices":[],"usage":{"prompt_tokens":-1,"completion_tokens":2}}` + "\n\n", "", "usage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := rawServer(t, tc.stream)
			e := newEngine(t, remote.Config{BaseURL: srv.URL + "/v1/", Models: map[string]string{"m": "m"}})
			objs, u, err := collect(t, e, request(engine.Chat, "m", true, ""))
			if got := text(objs); got != tc.text {
				t.Errorf("text = %q, want %q", got, tc.text)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("err = %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := (price.Usage{PromptTokens: 3, CachedTokens: 1, CompletionTokens: 2}); u != want {
				t.Errorf("usage = %+v, want %+v", u, want)
			}
		})
	}
}

func TestDiscovery(t *testing.T) {
	s := fakeServer(t, enginetest.FakeOptions{Models: []string{"zeta", "alpha"}, ContextLength: 8192})
	e := newEngine(t, remote.Config{BaseURL: s.URL + "/"})
	got := e.Models()
	if len(got) != 2 || got[0] != (engine.Model{ID: "alpha", ContextLength: 8192}) || got[1].ID != "zeta" {
		t.Errorf("Models() = %+v", got)
	}
	if s.Requests() != 0 {
		t.Errorf("discovery counted as %d completion requests", s.Requests())
	}

	empty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"object":"list","data":[]}`)
	}))
	defer empty.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `<html>`)
	}))
	defer broken.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	for _, tc := range []struct{ url, want string }{
		{empty.URL, "serves no models"},
		{broken.URL, "not OpenAI's shape"},
		{down.URL, "listing models"},
	} {
		_, err := remote.New(context.Background(), remote.Config{BaseURL: tc.url})
		if err == nil || !strings.Contains(err.Error(), "engine at "+tc.url+"/models") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one naming the URL and saying %q", tc.url, err, tc.want)
		}
	}
	for _, cfg := range []remote.Config{
		{BaseURL: "127.0.0.1:8000/v1"},
		{BaseURL: "ftp://host/v1"},
		{BaseURL: "http://host/v1", Models: map[string]string{"a": ""}},
		{BaseURL: "http://host/v1", MaxResponse: -1},
	} {
		if _, err := remote.New(context.Background(), cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestConcurrent(t *testing.T) {
	s := fakeServer(t, enginetest.FakeOptions{})
	e := newEngine(t, remote.Config{BaseURL: s.URL})
	errs := make(chan error, 16)
	for i := range cap(errs) {
		go func() {
			req := request(engine.Chat, enginetest.DefaultModel, i%2 == 0, "")
			req.ID = fmt.Sprint("chatcmpl-", i)
			_, err := e.Run(context.Background(), req, func(b []byte) error {
				if !strings.Contains(string(b), `"id":"`+req.ID+`"`) {
					return fmt.Errorf("request %d got %s", i, b)
				}
				return nil
			})
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// The worker's limit (the header's, or its default cap when the app set
// none) reaches the server, so it never generates unbounded.
func TestWorkerLimitReachesServer(t *testing.T) {
	s := fakeServer(t, enginetest.FakeOptions{})
	e := newEngine(t, remote.Config{BaseURL: s.URL})
	for _, extra := range []string{"", `,"max_completion_tokens":7`} {
		req := request(engine.Chat, enginetest.DefaultModel, false, extra)
		req.MaxTokens = 7
		if _, _, err := collect(t, e, req); err != nil {
			t.Fatal(err)
		}
		body := lastBody(t, s)
		if body["max_tokens"] != 7.0 {
			t.Errorf("extra %q: server got max_tokens %v, want 7", extra, body["max_tokens"])
		}
		if v, ok := body["max_completion_tokens"]; ok && v != 7.0 {
			t.Errorf("extra %q: server got max_completion_tokens %v, want 7", extra, v)
		}
	}
}
