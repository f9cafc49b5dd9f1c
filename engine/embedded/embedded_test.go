package embedded

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/embedded/gguf"
	"github.com/cocoon-go/cocoon/engine/embedded/internal/testmodel"
	"github.com/cocoon-go/cocoon/price"
)

const modelName = "tiny"

func newEngine(t testing.TB, c testmodel.Config, opts Options) *Engine {
	t.Helper()
	data, err := testmodel.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Load(modelName, data, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// tiny is the default test engine: ChatML template, 128 positions.
func tiny(t testing.TB) *Engine {
	return newEngine(t, testmodel.Config{Template: testmodel.ChatML, Context: 128}, Options{})
}

func f64(v float64) *float64 { return &v }
func i64(v int64) *int64     { return &v }

func chatReq(stream bool, maxTokens int) *engine.Request {
	return &engine.Request{
		Kind: engine.Chat, ID: "chatcmpl-1", Created: 1700000000, Model: modelName, Stream: stream,
		Messages:  []engine.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "hello world"}},
		MaxTokens: maxTokens, Temperature: f64(0),
	}
}

// result is what one Run produced.
type result struct {
	chunks [][]byte
	usage  price.Usage
	err    error
}

func run(ctx context.Context, e *Engine, req *engine.Request) result {
	var r result
	r.usage, r.err = e.Run(ctx, req, func(b []byte) error {
		r.chunks = append(r.chunks, bytes.Clone(b))
		return nil
	})
	return r
}

// strict decodes b into v, refusing fields v does not have.
func strict(t testing.TB, b []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}

// streamedChat checks a streamed chat answer's chunks and returns its text
// pieces and finish reason.
func streamedChat(t testing.TB, req *engine.Request, r result) (pieces []string, finish string) {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	for i, b := range r.chunks {
		var c api.ChatCompletionChunk
		strict(t, b, &c)
		if c.Object != api.ObjectChatCompletionChunk || c.ID != req.ID || c.Created != req.Created || c.Model != req.Model || c.Usage != nil || len(c.Choices) != 1 {
			t.Fatalf("chunk %d: %s", i, b)
		}
		ch := c.Choices[0]
		switch {
		case i == 0:
			if ch.Delta.Role != "assistant" || ch.FinishReason != nil {
				t.Fatalf("first chunk %s", b)
			}
		case i == len(r.chunks)-1:
			if ch.Delta != (api.ChatDelta{}) || ch.FinishReason == nil {
				t.Fatalf("last chunk %s", b)
			}
			finish = *ch.FinishReason
		default:
			if ch.Delta.Role != "" || ch.Delta.Content == "" || ch.FinishReason != nil {
				t.Fatalf("chunk %d: %s", i, b)
			}
			pieces = append(pieces, ch.Delta.Content)
		}
	}
	return pieces, finish
}

func TestChat(t *testing.T) {
	e := tiny(t)
	req := chatReq(true, 8)
	r := run(t.Context(), e, req)
	pieces, finish := streamedChat(t, req, r)
	if finish != api.FinishLength || r.usage.CompletionTokens != 8 || len(pieces) == 0 {
		t.Errorf("finish %q after %d tokens, %d pieces", finish, r.usage.CompletionTokens, len(pieces))
	}
	prompt := e.tok.Encode("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n")
	if r.usage.PromptTokens != uint64(len(prompt)) {
		t.Errorf("prompt tokens %d, want %d", r.usage.PromptTokens, len(prompt))
	}

	// The same request unstreamed gives the same text, once, with usage.
	req.Stream = false
	r2 := run(t.Context(), e, req)
	if r2.err != nil || len(r2.chunks) != 1 {
		t.Fatalf("%d objects, %v", len(r2.chunks), r2.err)
	}
	var c api.ChatCompletion
	strict(t, r2.chunks[0], &c)
	want := api.Usage{PromptTokens: r.usage.PromptTokens, CompletionTokens: 8, TotalTokens: r.usage.PromptTokens + 8}
	switch {
	case c.Object != api.ObjectChatCompletion || c.ID != req.ID || c.Model != modelName || len(c.Choices) != 1:
		t.Errorf("response %s", r2.chunks[0])
	case c.Choices[0].Message.Role != "assistant" || c.Choices[0].Message.Content != strings.Join(pieces, ""):
		t.Errorf("message %+v, streamed %q", c.Choices[0].Message, strings.Join(pieces, ""))
	case c.Choices[0].FinishReason != api.FinishLength:
		t.Errorf("finish %q", c.Choices[0].FinishReason)
	case c.Usage == nil || *c.Usage != want:
		t.Errorf("usage %+v, want %+v", c.Usage, want)
	case r2.usage != r.usage:
		t.Errorf("returned usage %+v, streamed %+v", r2.usage, r.usage)
	}
}

func TestCompletion(t *testing.T) {
	e := tiny(t)
	req := &engine.Request{Kind: engine.Completion, ID: "cmpl-1", Created: 5, Model: modelName, Stream: true,
		Prompt: "the thing is", MaxTokens: 6, Temperature: f64(0)}
	r := run(t.Context(), e, req)
	if r.err != nil {
		t.Fatal(r.err)
	}
	var text strings.Builder
	for i, b := range r.chunks {
		var c api.TextCompletion
		strict(t, b, &c)
		if c.Object != api.ObjectTextCompletion || c.ID != "cmpl-1" || c.Created != 5 || c.Usage != nil || len(c.Choices) != 1 {
			t.Fatalf("chunk %s", b)
		}
		last := i == len(r.chunks)-1
		if (c.Choices[0].FinishReason != nil) != last || last && (*c.Choices[0].FinishReason != api.FinishLength || c.Choices[0].Text != "") {
			t.Fatalf("chunk %d of %d: %s", i, len(r.chunks), b)
		}
		text.WriteString(c.Choices[0].Text)
	}
	if r.usage != (price.Usage{PromptTokens: uint64(len(e.tok.Encode(req.Prompt))), CompletionTokens: 6}) {
		t.Errorf("usage %+v", r.usage)
	}
	req.Stream = false
	r2 := run(t.Context(), e, req)
	var c api.TextCompletion
	if r2.err != nil || len(r2.chunks) != 1 {
		t.Fatalf("%d objects, %v", len(r2.chunks), r2.err)
	}
	strict(t, r2.chunks[0], &c)
	if c.Choices[0].Text != text.String() || c.Usage == nil || c.Usage.TotalTokens != r.usage.PromptTokens+6 || *c.Choices[0].FinishReason != api.FinishLength {
		t.Errorf("unstreamed %s, streamed text %q", r2.chunks[0], text.String())
	}
}

// text runs req unstreamed and returns the answer and finish reason.
func text(t testing.TB, e *Engine, req *engine.Request) (string, string, price.Usage) {
	t.Helper()
	req = ptrCopy(req)
	req.Stream = false
	r := run(context.Background(), e, req)
	if r.err != nil {
		t.Fatal(r.err)
	}
	if req.Kind == engine.Completion {
		var c api.TextCompletion
		strict(t, r.chunks[0], &c)
		return c.Choices[0].Text, *c.Choices[0].FinishReason, r.usage
	}
	var c api.ChatCompletion
	strict(t, r.chunks[0], &c)
	return c.Choices[0].Message.Content, c.Choices[0].FinishReason, r.usage
}

func ptrCopy(r *engine.Request) *engine.Request { c := *r; return &c }

func TestGreedyDeterministic(t *testing.T) {
	e := newEngine(t, testmodel.Config{Type: gguf.Q8_0, Context: 128}, Options{Threads: 3})
	first, _, _ := text(t, e, chatReq(false, 20))
	for range 2 {
		if again, _, _ := text(t, e, chatReq(false, 20)); again != first {
			t.Fatalf("greedy answers differ: %q, %q", first, again)
		}
	}
	// A different thread count splits the work differently but not the sums.
	e1 := newEngine(t, testmodel.Config{Type: gguf.Q8_0, Context: 128}, Options{Threads: 1})
	if one, _, _ := text(t, e1, chatReq(false, 20)); one != first {
		t.Errorf("1 thread: %q, 3 threads: %q", one, first)
	}
}

func TestSeededSampling(t *testing.T) {
	e := tiny(t)
	req := chatReq(false, 16)
	req.Temperature, req.TopP, req.Seed = f64(1.2), f64(0.95), i64(7)
	a, _, _ := text(t, e, req)
	b, _, _ := text(t, e, req)
	if a != b {
		t.Errorf("seed 7 gave %q then %q", a, b)
	}
	req.Seed = i64(8)
	c, _, _ := text(t, e, req)
	req.Temperature = f64(0)
	greedy, _, _ := text(t, e, req)
	if c == a && a == greedy {
		t.Errorf("seeds 7 and 8 and greedy all gave %q", a)
	}
	req.Seed = nil // random seed: still answers
	req.Temperature = f64(1)
	if _, _, u := text(t, e, req); u.CompletionTokens == 0 {
		t.Error("no tokens with a random seed")
	}
}

// TestStopAcrossTokens uses as stop string the end of one token's text and
// the start of the next one's.
func TestStopAcrossTokens(t *testing.T) {
	e := tiny(t)
	req := chatReq(true, 24)
	pieces, _ := streamedChat(t, req, run(t.Context(), e, req))
	full := strings.Join(pieces, "")
	k := -1
	for i := 1; i+1 < len(pieces); i++ {
		if isASCII(pieces[i]) && isASCII(pieces[i+1]) {
			k = i
			break
		}
	}
	if k < 0 {
		t.Fatalf("no two ASCII pieces in a row in %q", pieces)
	}
	stop := pieces[k][len(pieces[k])-1:] + pieces[k+1][:1]
	want := full[:strings.Index(full, stop)]

	req.Stop = []string{"never appears", stop}
	r := run(t.Context(), e, req)
	got, finish := streamedChat(t, req, r)
	if strings.Join(got, "") != want || finish != api.FinishStop {
		t.Errorf("stop %q: got %q (%s), want %q", stop, strings.Join(got, ""), finish, want)
	}
	for _, p := range got {
		if strings.Contains(p, stop) {
			t.Errorf("piece %q holds the stop string", p)
		}
	}
	// Text held back for a stop string that never completes still arrives.
	req.Stop = []string{full[len(full)-1:] + "\x00never"}
	if got, finish := streamedChat(t, req, run(t.Context(), e, req)); strings.Join(got, "") != full || finish != api.FinishLength {
		t.Errorf("unfinished stop string: %q (%s), want %q", strings.Join(got, ""), finish, full)
	}
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return s != ""
}

// greedyTokens decodes greedily with the model directly, for tests that need
// the token ids an answer is made of.
func greedyTokens(t *testing.T, e *Engine, prompt []int, n int) []int {
	s := e.model.NewState()
	var logits []float32
	var err error
	for _, tok := range prompt {
		if logits, err = s.Forward(tok, true); err != nil {
			t.Fatal(err)
		}
	}
	var out []int
	for range n {
		tok := argmax(logits)
		out = append(out, tok)
		if logits, err = s.Forward(tok, true); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestStopAtEOS makes the fourth token of the greedy answer the model's EOS.
func TestStopAtEOS(t *testing.T) {
	e := tiny(t)
	req := &engine.Request{Kind: engine.Completion, Model: modelName, Prompt: "hello", MaxTokens: 10, Temperature: f64(0)}
	prompt, _ := e.prompt(req)
	toks := greedyTokens(t, e, prompt, 10)
	eos := toks[3]
	n := 1 + slicesIndex(toks, eos)
	e2 := newEngine(t, testmodel.Config{Template: testmodel.ChatML, Context: 128, KV: map[string]any{"tokenizer.ggml.eos_token_id": uint32(eos)}}, Options{})
	got, finish, u := text(t, e2, req)
	if finish != api.FinishStop || u.CompletionTokens != uint64(n) || got != e.tok.Decode(toks[:n-1]) {
		t.Errorf("finish %q after %d tokens with text %q; want stop after %d with %q", finish, u.CompletionTokens, got, n, e.tok.Decode(toks[:n-1]))
	}
}

func slicesIndex(s []int, v int) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func TestContextLimits(t *testing.T) {
	e := newEngine(t, testmodel.Config{Context: 16}, Options{})
	req := &engine.Request{Kind: engine.Completion, Model: modelName, Prompt: strings.Repeat("x ", 20), Temperature: f64(0)}
	var bad *engine.BadRequestError
	if r := run(t.Context(), e, req); !errors.As(r.err, &bad) || len(r.chunks) != 0 {
		t.Errorf("long prompt: %v, %d chunks", r.err, len(r.chunks))
	}
	// Generation stops at the context length.
	req.Prompt = "x x x x"
	_, finish, u := text(t, e, req)
	if finish != api.FinishLength || u.PromptTokens+u.CompletionTokens != 17 {
		t.Errorf("finish %q with usage %+v", finish, u)
	}
	// The engine's default max_tokens applies when the request sets none.
	e = newEngine(t, testmodel.Config{}, Options{DefaultMaxTokens: 3})
	if _, finish, u := text(t, e, req); finish != api.FinishLength || u.CompletionTokens != 3 {
		t.Errorf("default max tokens: %q %+v", finish, u)
	}
}

func TestBadRequests(t *testing.T) {
	e := tiny(t)
	for name, mutate := range map[string]func(*engine.Request){
		"temperature": func(r *engine.Request) { r.Temperature = f64(-1) },
		"top_p":       func(r *engine.Request) { r.TopP = f64(0) },
		"max_tokens":  func(r *engine.Request) { r.MaxTokens = -1 },
		"no messages": func(r *engine.Request) { r.Messages = nil },
		"kind":        func(r *engine.Request) { r.Kind = "embeddings" },
		"empty":       func(r *engine.Request) { r.Kind, r.Prompt = engine.Completion, "" },
		"stops":       func(r *engine.Request) { r.Stop = make([]string, MaxStops+1) },
		"long stop":   func(r *engine.Request) { r.Stop = []string{strings.Repeat("x", MaxStopLen+1)} },
	} {
		req := chatReq(true, 4)
		mutate(req)
		var bad *engine.BadRequestError
		if r := run(t.Context(), e, req); !errors.As(r.err, &bad) || len(r.chunks) != 0 {
			t.Errorf("%s: %v, %d chunks", name, r.err, len(r.chunks))
		}
	}
	req := chatReq(true, 4)
	req.Model = "gpt-4"
	if r := run(t.Context(), e, req); !errors.Is(r.err, engine.ErrUnknownModel) || !strings.Contains(r.err.Error(), "gpt-4") {
		t.Errorf("unknown model: %v", r.err)
	}
	// A template that raises refuses the request, not the engine.
	e = newEngine(t, testmodel.Config{Template: `{{ raise_exception('roles must alternate') }}`}, Options{})
	var bad *engine.BadRequestError
	if r := run(t.Context(), e, chatReq(false, 4)); !errors.As(r.err, &bad) || !strings.Contains(r.err.Error(), "roles must alternate") {
		t.Errorf("raising template: %v", r.err)
	}
}

func TestCancel(t *testing.T) {
	e := tiny(t)
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	req := chatReq(true, 50)
	_, err := e.Run(ctx, req, func([]byte) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n != 3 {
		t.Errorf("after cancel: %v with %d chunks", err, n)
	}
	if r := run(ctx, e, req); !errors.Is(r.err, context.Canceled) || len(r.chunks) > 1 {
		t.Errorf("cancelled before the start: %v with %d chunks", r.err, len(r.chunks))
	}
	// An emit error stops the answer too.
	boom := errors.New("client gone")
	if _, err := e.Run(t.Context(), req, func([]byte) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("emit error: %v", err)
	}
}

func TestConcurrentRuns(t *testing.T) {
	e := newEngine(t, testmodel.Config{Template: testmodel.ChatML, Context: 128}, Options{MaxConcurrent: 2})
	want, _, _ := text(t, e, chatReq(false, 12))
	var wg sync.WaitGroup
	errs := make(chan string, 6)
	for range 6 {
		wg.Go(func() {
			if got, _, _ := text(t, e, chatReq(false, 12)); got != want {
				errs <- got
			}
		})
	}
	wg.Wait()
	close(errs)
	for got := range errs {
		t.Errorf("concurrent answer %q, alone %q", got, want)
	}
}

// TestPaddedVocabulary gives the model more embeddings than tokens, as many
// files do, and makes a padding row the likeliest: it must never be picked.
func TestPaddedVocabulary(t *testing.T) {
	data := mustBuild(t, testmodel.Config{Template: testmodel.ChatML})
	f, err := gguf.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	var w gguf.Writer
	for _, kv := range f.KV {
		w.AddKV(kv.Key, kv.Value)
	}
	for _, tn := range f.Tensors {
		if tn.Name == "output.weight" || tn.Name == "token_embd.weight" {
			v := make([]float32, tn.Elements())
			gguf.Dequantize(v, tn.Type, tn.Data)
			// Rows of ±1e4 alternating, half of them negated: some padding
			// row gets a huge positive logit whatever the hidden state.
			pad := make([]float32, 8*tn.Dims[0])
			for i := range pad {
				row, col := i/int(tn.Dims[0]), i%int(tn.Dims[0])
				pad[i] = 1e4
				if (row+col)%2 == 1 {
					pad[i] = -1e4
				}
			}
			v = append(v, pad...)
			w.AddTensor(tn.Name, gguf.F32, []uint64{tn.Dims[0], tn.Dims[1] + 8}, gguf.EncodeF32(v))
			continue
		}
		w.AddTensor(tn.Name, tn.Type, tn.Dims, tn.Data)
	}
	b, _ := w.Bytes()
	e, err := Load(modelName, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e.model.Vocab != e.tok.Len()+8 {
		t.Fatalf("vocabulary %d, embeddings %d", e.tok.Len(), e.model.Vocab)
	}
	req := chatReq(false, 30)
	req.Temperature = f64(1.5)
	for seed := range int64(5) {
		req.Seed = &seed
		if _, _, u := text(t, e, req); u.CompletionTokens == 0 {
			t.Error("no answer")
		}
	}
}

func TestTemplate(t *testing.T) {
	msgs := []engine.Message{{Role: "user", Content: "hi"}}
	tm, err := newChatTemplate(`{{ bos_token }}{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}{% if add_generation_prompt %}>{% endif %}{{ eos_token }}`, "<s>", "</s>")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tm.render(msgs); got != "<s>[user:hi]></s>" || err != nil {
		t.Errorf("render = %q, %v", got, err)
	}
	tm, _ = newChatTemplate("", "", "")
	if got, _ := tm.render(msgs); got != "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n" {
		t.Errorf("ChatML fallback = %q", got)
	}
	if _, err := newChatTemplate("{% for %}", "", ""); err == nil {
		t.Error("broken template compiled")
	}
	// A model file without a template answers chats in ChatML.
	e := newEngine(t, testmodel.Config{}, Options{})
	if _, _, u := text(t, e, chatReq(false, 2)); u.PromptTokens != uint64(len(e.tok.Encode("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello world<|im_end|>\n<|im_start|>assistant\n"))) {
		t.Errorf("prompt tokens %d", u.PromptTokens)
	}
}

func TestBOS(t *testing.T) {
	e := newEngine(t, testmodel.Config{KV: map[string]any{"tokenizer.ggml.add_bos_token": true}}, Options{})
	req := &engine.Request{Kind: engine.Completion, Model: modelName, Prompt: "hello"}
	ids, err := e.prompt(req)
	if err != nil || ids[0] != e.tok.BOS() || len(ids) != 2 {
		t.Errorf("prompt %v, %v", ids, err)
	}
	req.Prompt = testmodel.EndOfText + "hello" // already there: not doubled
	if ids, _ := e.prompt(req); len(ids) != 2 {
		t.Errorf("BOS doubled: %v", ids)
	}
}

func TestModelsAndLoadFile(t *testing.T) {
	data, err := testmodel.Build(testmodel.Config{Context: 32})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "my-model.gguf")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var last, total int64
	e, err := LoadFile(path, Options{Progress: func(d, n int64) { last, total = d, n }})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := engine.Model{ID: "my-model", Hash: hex.EncodeToString(sum[:]), ContextLength: 32}
	if m := e.Models(); len(m) != 1 || m[0] != want {
		t.Errorf("Models = %+v, want %+v", m, want)
	}
	if last != int64(len(data)) || total != int64(len(data)) {
		t.Errorf("progress ended at %d of %d", last, total)
	}
	e2, err := LoadFile(path, Options{Name: "other"})
	if err != nil || e2.Models()[0].ID != "other" || e2.Models()[0].Hash != want.Hash {
		t.Errorf("named: %v %+v", err, e2.Models())
	}
	e.Close()
	if r := run(t.Context(), e, &engine.Request{Kind: engine.Completion, Model: "my-model", Prompt: "x"}); !errors.Is(r.err, ErrClosed) {
		t.Errorf("after Close: %v", r.err)
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.gguf"), Options{}); err == nil {
		t.Error("loaded a missing file")
	}
}

func TestLoadRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"garbage": {[]byte("not a model"), "magic"},
		"arch":    {mustBuild(t, testmodel.Config{KV: map[string]any{"general.architecture": "mamba"}}), `"mamba"`},
		"tok":     {mustBuild(t, testmodel.Config{KV: map[string]any{"tokenizer.ggml.model": "t5"}}), `"t5"`},
		"tmpl":    {mustBuild(t, testmodel.Config{Template: "{% if %}"}), "chat template"},
	} {
		_, err := Load("m", tc.data, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error mentioning %q", name, err, tc.want)
		}
	}
	if _, err := Load("", mustBuild(t, testmodel.Config{}), Options{}); err == nil {
		t.Error("loaded without a name")
	}
}

func mustBuild(t testing.TB, c testmodel.Config) []byte {
	b, err := testmodel.Build(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
