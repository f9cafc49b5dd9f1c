package api

import (
	"encoding/hex"

	"github.com/cocoon-go/cocoon/price"
)

// Object types, as OpenAI names them.
const (
	ObjectChatCompletion      = "chat.completion"
	ObjectChatCompletionChunk = "chat.completion.chunk"
	ObjectTextCompletion      = "text_completion"
	ObjectModel               = "model"
	ObjectList                = "list"
)

// Finish reasons.
const (
	FinishStop   = "stop"
	FinishLength = "length"
)

// Usage counts tokens and, as in Telegram's COCOON, their cost in nanoTON.
type Usage struct {
	PromptTokens        uint64               `json:"prompt_tokens"`
	CompletionTokens    uint64               `json:"completion_tokens"`
	TotalTokens         uint64               `json:"total_tokens"`
	PromptTokensDetails *PromptTokensDetails `json:"prompt_tokens_details,omitempty"`
	PromptTotalCost     uint64               `json:"prompt_total_cost"`
	CompletionTotalCost uint64               `json:"completion_total_cost"`
	TotalCost           uint64               `json:"total_cost"`
}

// PromptTokensDetails breaks down prompt tokens.
type PromptTokensDetails struct {
	CachedTokens uint64 `json:"cached_tokens"`
}

// NewUsage builds the usage object for u priced at c.
func NewUsage(u price.Usage, c price.Cost) *Usage {
	out := &Usage{
		PromptTokens:        u.PromptTokens,
		CompletionTokens:    u.CompletionTokens,
		TotalTokens:         u.PromptTokens + u.CompletionTokens,
		PromptTotalCost:     c.Prompt,
		CompletionTotalCost: c.Completion,
		TotalCost:           c.Total,
	}
	if u.CachedTokens > 0 {
		out.PromptTokensDetails = &PromptTokensDetails{CachedTokens: u.CachedTokens}
	}
	return out
}

// ChatCompletion is the response to a non-streaming chat request.
type ChatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []ChatChoice `json:"choices"`
	Usage   *Usage       `json:"usage,omitempty"`
}

// ChatChoice is one answer of a chat completion.
type ChatChoice struct {
	Index        int          `json:"index"`
	Message      *ChatMessage `json:"message"`
	FinishReason string       `json:"finish_reason"`
}

// ChatMessage is a message in a response.
type ChatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatCompletionChunk is one server-sent event of a streaming chat answer.
type ChatCompletionChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []ChatChunkChoice `json:"choices"`
	Usage   *Usage            `json:"usage,omitempty"`
}

// ChatChunkChoice is the delta of one choice in a chunk.
type ChatChunkChoice struct {
	Index        int       `json:"index"`
	Delta        ChatDelta `json:"delta"`
	FinishReason *string   `json:"finish_reason"`
}

// ChatDelta is the new part of a message.
type ChatDelta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

// TextCompletion is the response to /v1/completions, and each chunk of it
// when streamed.
type TextCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []TextChoice `json:"choices"`
	Usage   *Usage       `json:"usage,omitempty"`
}

// TextChoice is one answer of a text completion.
type TextChoice struct {
	Text         string  `json:"text"`
	Index        int     `json:"index"`
	Logprobs     any     `json:"logprobs"`
	FinishReason *string `json:"finish_reason"`
}

// Model is one entry of GET /v1/models.
type Model struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// ModelList is the response of GET /v1/models.
type ModelList struct {
	Object string  `json:"object"`
	Data   []Model `json:"data"`
}

// CompletionID is the id apps see for the request with id rid.
func CompletionID(endpoint string, rid [16]byte) string {
	if endpoint == EndpointCompletion {
		return "cmpl-" + hex.EncodeToString(rid[:])
	}
	return "chatcmpl-" + hex.EncodeToString(rid[:])
}
