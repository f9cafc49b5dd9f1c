package enginetest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/price"
)

func TestPiecesAndSplit(t *testing.T) {
	for _, text := range []string{DefaultAnswer, "", "   ", " lead and trail ", "one", "tabs\tand\nnewlines  x", "héllo wörld ✓"} {
		if got := strings.Join(pieces(text), ""); got != text {
			t.Errorf("pieces(%q) join to %q", text, got)
		}
		if n := len(strings.Fields(text)); n > 0 && len(pieces(text)) != n {
			t.Errorf("pieces(%q): %d, want one per word (%d)", text, len(pieces(text)), n)
		}
		for _, n := range []int{0, 1, 3, 1000} {
			parts := split(text, n)
			if got := strings.Join(parts, ""); got != text || len(parts) == 0 {
				t.Errorf("split(%q, %d) = %q", text, n, parts)
			}
			if n > 0 && len(parts) > n {
				t.Errorf("split(%q, %d) gave %d parts", text, n, len(parts))
			}
		}
	}
	if got, fin := truncate("a b c d", 2); got != "a b" || fin != api.FinishLength {
		t.Errorf("truncate to 2 = %q, %s", got, fin)
	}
	if got, fin := truncate("a b", 2); got != "a b" || fin != api.FinishStop {
		t.Errorf("truncate to 2 = %q, %s", got, fin)
	}
}

func chatRequest(stream bool) *engine.Request {
	return &engine.Request{
		Kind: engine.Chat, ID: "chatcmpl-1", Created: 99, Model: DefaultModel, Stream: stream,
		Messages: []engine.Message{{Role: "system", Content: "be brief"}, {Role: "user", Content: "hello there"}},
	}
}

// runFake runs req and returns the emitted objects as raw JSON.
func runFake(t *testing.T, f *FakeEngine, ctx context.Context, req *engine.Request) ([]string, price.Usage, error) {
	t.Helper()
	var out []string
	u, err := f.Run(ctx, req, func(b []byte) error { out = append(out, string(b)); return nil })
	return out, u, err
}

func TestFakeEngineStream(t *testing.T) {
	f := &FakeEngine{Text: "one two three four five", Chunks: 3, CachedTokens: 100}
	objs, u, err := runFake(t, f, context.Background(), chatRequest(true))
	if err != nil {
		t.Fatal(err)
	}
	if want := (price.Usage{PromptTokens: 4, CachedTokens: 4, CompletionTokens: 5}); u != want {
		t.Errorf("usage = %+v, want %+v", u, want)
	}
	if len(objs) != 3 {
		t.Fatalf("%d chunks, want 3", len(objs))
	}
	var text strings.Builder
	for i, o := range objs {
		var c api.ChatCompletionChunk
		if err := json.Unmarshal([]byte(o), &c); err != nil {
			t.Fatal(err)
		}
		if c.ID != "chatcmpl-1" || c.Object != api.ObjectChatCompletionChunk || c.Created != 99 || c.Model != DefaultModel || c.Usage != nil || len(c.Choices) != 1 {
			t.Errorf("chunk %d = %s", i, o)
			continue
		}
		ch := c.Choices[0]
		if (i == 0) != (ch.Delta.Role == "assistant") || (i == 2) != (ch.FinishReason != nil) {
			t.Errorf("chunk %d: role %q, finish %v", i, ch.Delta.Role, ch.FinishReason)
		}
		text.WriteString(ch.Delta.Content)
	}
	if text.String() != f.Text {
		t.Errorf("text = %q", text.String())
	}
	if f.Runs() != 1 || f.LastRequest().ID != "chatcmpl-1" {
		t.Errorf("Runs %d, LastRequest %+v", f.Runs(), f.LastRequest())
	}
}

func TestFakeEngineWhole(t *testing.T) {
	f := &FakeEngine{}
	objs, u, err := runFake(t, f, context.Background(), chatRequest(false))
	if err != nil || len(objs) != 1 {
		t.Fatalf("%d objects, %v", len(objs), err)
	}
	var c api.ChatCompletion
	json.Unmarshal([]byte(objs[0]), &c)
	if c.Object != api.ObjectChatCompletion || c.Choices[0].Message.Content != DefaultAnswer || c.Choices[0].FinishReason != api.FinishStop ||
		c.Usage == nil || c.Usage.CompletionTokens != u.CompletionTokens || u.CompletionTokens != Tokens(DefaultAnswer) {
		t.Errorf("answer %s, usage %+v", objs[0], u)
	}

	req := &engine.Request{Kind: engine.Completion, ID: "cmpl-1", Model: DefaultModel, Prompt: "a b c", MaxTokens: 2}
	objs, u, err = runFake(t, f, context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var tc api.TextCompletion
	json.Unmarshal([]byte(objs[0]), &tc)
	if tc.Object != api.ObjectTextCompletion || tc.Choices[0].Text != "The quick" || *tc.Choices[0].FinishReason != api.FinishLength ||
		u != (price.Usage{PromptTokens: 3, CompletionTokens: 2}) {
		t.Errorf("answer %s, usage %+v", objs[0], u)
	}
}

func TestFakeEngineFail(t *testing.T) {
	for _, tc := range []struct{ after, emitted int }{{0, 0}, {2, 2}, {9, 9}, {100, 9}} {
		f := &FakeEngine{Fail: true, FailAfter: tc.after}
		objs, _, err := runFake(t, f, context.Background(), chatRequest(true))
		if !errors.Is(err, ErrInjected) || len(objs) != tc.emitted {
			t.Errorf("FailAfter %d: %d objects, err %v; want %d and ErrInjected", tc.after, len(objs), err, tc.emitted)
		}
	}
	f := &FakeEngine{}
	if _, _, err := runFake(t, f, context.Background(), &engine.Request{Kind: engine.Chat, Model: "other"}); !errors.Is(err, engine.ErrUnknownModel) {
		t.Errorf("unknown model: %v", err)
	}
}

func TestFakeEngineBlock(t *testing.T) {
	f := &FakeEngine{Block: true, BlockAfter: 1}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	n := 0
	go func() {
		_, err := f.Run(ctx, chatRequest(true), func([]byte) error { n++; return nil })
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Run returned before ctx was done: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("err %v after %d objects, want context.Canceled after 1", err, n)
	}
}

// The fake server must look like a real one to the official SDK.
func TestFakeServerWithSDK(t *testing.T) {
	s := NewFakeServer(FakeOptions{CachedTokens: 1, APIKey: "sk-test"})
	defer s.Close()
	c := openai.NewClient(option.WithBaseURL(s.URL), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
	ctx := context.Background()

	models, err := c.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != DefaultModel {
		t.Fatalf("models: %+v, %v", models, err)
	}
	params := openai.ChatCompletionNewParams{Model: DefaultModel, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello there")}}
	resp, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content != DefaultAnswer || resp.Usage.PromptTokens != 2 || resp.Usage.CompletionTokens != 9 || resp.Usage.PromptTokensDetails.CachedTokens != 1 {
		t.Errorf("answer %s", resp.RawJSON())
	}

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	var text strings.Builder
	var usage openai.CompletionUsage
	for stream.Next() {
		ch := stream.Current()
		if len(ch.Choices) > 0 {
			text.WriteString(ch.Choices[0].Delta.Content)
		} else {
			usage = ch.Usage
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != DefaultAnswer || usage.CompletionTokens != 9 || usage.TotalTokens != 11 {
		t.Errorf("streamed %q, usage %s", text.String(), usage.RawJSON())
	}

	tc, err := c.Completions.New(ctx, openai.CompletionNewParams{
		Model: DefaultModel, Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("a b c")}, MaxTokens: openai.Int(3),
	})
	if err != nil {
		t.Fatal(err)
	}
	if tc.Choices[0].Text != "The quick brown" || tc.Choices[0].FinishReason != "length" || tc.Usage.PromptTokens != 3 {
		t.Errorf("completion %s", tc.RawJSON())
	}

	params.Model = "nope"
	_, err = c.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || !strings.Contains(apiErr.Message, "nope") {
		t.Errorf("unknown model: %v", err)
	}
	if s.Requests() != 4 || s.Cancelled() != 0 {
		t.Errorf("Requests %d, Cancelled %d", s.Requests(), s.Cancelled())
	}
}
