package embedded

import (
	"context"
	"strings"
	"testing"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/models"
)

// TestCocoonTiny runs the model the worker ships. Greedy answers end, are
// the same every time, streamed or not, and have text in them.
func TestCocoonTiny(t *testing.T) {
	e, err := Load(models.Name, models.CocoonTiny, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if m := e.Models()[0]; m.ID != models.Name || len(m.Hash) != 64 || m.ContextLength <= 0 {
		t.Errorf("Models = %+v", e.Models())
	}
	const maxTokens = 48
	chat := &engine.Request{
		Kind: engine.Chat, ID: "chatcmpl-tiny", Model: models.Name, MaxTokens: maxTokens, Temperature: f64(0),
		Messages: []engine.Message{{Role: "user", Content: "Who made the heaven and the earth?"}},
	}
	completion := &engine.Request{Kind: engine.Completion, ID: "cmpl-tiny", Model: models.Name, MaxTokens: maxTokens,
		Temperature: f64(0), Prompt: "In the beginning God created"}
	answers := map[engine.Kind]string{}
	for _, req := range []*engine.Request{chat, completion} {
		answer, finish, usage := text(t, e, req)
		t.Logf("%s: %q (%s, %d tokens)", req.Kind, answer, finish, usage.CompletionTokens)
		answers[req.Kind] = answer
		if finish != api.FinishStop && finish != api.FinishLength || usage.CompletionTokens == 0 || usage.CompletionTokens > maxTokens {
			t.Errorf("%s: finish %q after %d tokens", req.Kind, finish, usage.CompletionTokens)
		}
		if again, _, _ := text(t, e, req); again != answer {
			t.Errorf("%s: greedy answers differ: %q then %q", req.Kind, answer, again)
		}
	}
	chat.Stream = true
	pieces, finish := streamedChat(t, chat, run(context.Background(), e, chat))
	if streamed := strings.Join(pieces, ""); streamed != answers[engine.Chat] || finish == "" {
		t.Errorf("streamed %q (%s), unstreamed %q", streamed, finish, answers[engine.Chat])
	}
	if answers[engine.Completion] == "" {
		t.Error("empty completion")
	}
	if answers[engine.Chat] == "" {
		// The 80-step preview of the model ends every chat turn at once;
		// the trained model answers.
		t.Skip("the model ends the chat turn before any text: still the untrained preview?")
	}
}
