package seal

import (
	"fmt"

	"github.com/cocoon-go/cocoon/price"
)

// PromptAllowance is the number of prompt tokens a receipt may claim beyond
// one per byte of the request body: what a chat template adds on its own
// (a default system prompt, tool-use instructions, BOS and role markers).
const PromptAllowance = 1024

// MaxUsage returns the most usage a receipt for a request with header h and
// a body of bodyLen bytes (the plaintext, as sealed) may claim. Worker,
// client and proxy each compute it from what they hold, and all get the same
// answer:
//
//   - prompt tokens: bodyLen + PromptAllowance. Tokenizers in use
//     (byte-level BPE, SentencePiece with byte fallback) never make more
//     than one token of one byte of text, and the body holds the text with
//     JSON around it, escapes only making it longer. Each message's own JSON
//     (at least 15 bytes: {"role":"user"}) is more bytes than the 4 to 8
//     tokens a template writes around a message, so the per-message
//     allowance is already in bodyLen; PromptAllowance covers what a template
//     adds once per request.
//   - cached tokens: no more than the prompt tokens (price.Price.Cost
//     refuses more, so no receipt can claim it).
//   - completion tokens: h.TokenLimit(), the app's max_tokens or
//     DefaultMaxTokens, which the worker gives its engine.
func MaxUsage(h *Header, bodyLen int) price.Usage {
	prompt := uint64(max(bodyLen, 0)) + PromptAllowance
	return price.Usage{PromptTokens: prompt, CachedTokens: prompt, CompletionTokens: h.TokenLimit()}
}

// MaxUsage is the package function MaxUsage for e, from the length of its
// sealed body, so that the proxy, which cannot open it, bounds receipts as
// client and worker do.
func (e *Envelope) MaxUsage() price.Usage {
	return MaxUsage(&e.Header, len(e.Body)-tagSize)
}

// MaxCost is the most a request with header h and a body of bodyLen bytes
// may cost: its price cap for the most tokens a receipt may claim
// (MaxUsage), with every prompt token cached or none, whichever costs more;
// math.MaxUint64 if that overflows. The proxy holds it against a client's
// credit while the request is in flight; the client holds it against its
// own spending caps.
func MaxCost(h *Header, bodyLen int) uint64 {
	return h.PriceCap.MaxCost(MaxUsage(h, bodyLen))
}

// MaxCost is the package function MaxCost for e, from the length of its
// sealed body.
func (e *Envelope) MaxCost() uint64 {
	return MaxCost(&e.Header, len(e.Body)-tagSize)
}

// Allows reports whether a receipt for e may charge its price for its usage:
// a price within the header's cap and usage within e.MaxUsage.
func (e *Envelope) Allows(r *Receipt) error {
	return e.Header.allows(r.Price, r.Usage, len(e.Body)-tagSize)
}

// Bound returns u cut to what a receipt for this request may claim (see
// MaxUsage), and whether anything was cut.
func (s *WorkerSession) Bound(u price.Usage) (price.Usage, bool) {
	m := MaxUsage(&s.header, s.bodyLen)
	b := price.Usage{
		PromptTokens:     min(u.PromptTokens, m.PromptTokens),
		CompletionTokens: min(u.CompletionTokens, m.CompletionTokens),
	}
	b.CachedTokens = min(u.CachedTokens, b.PromptTokens)
	return b, b != u
}

// allows reports whether a receipt for h, whose body had bodyLen bytes, may
// charge p for u.
func (h *Header) allows(p price.Price, u price.Usage, bodyLen int) error {
	if !p.Within(h.PriceCap) {
		return fmt.Errorf("seal: receipt for request %x: price %+v over the cap %+v: %w", h.RequestID, p, h.PriceCap, ErrReceipt)
	}
	m := MaxUsage(h, bodyLen)
	var what string
	var got, limit uint64
	switch {
	case u.PromptTokens > m.PromptTokens:
		what, got, limit = "prompt", u.PromptTokens, m.PromptTokens
	case u.CompletionTokens > m.CompletionTokens:
		what, got, limit = "completion", u.CompletionTokens, m.CompletionTokens
	default:
		return nil
	}
	return fmt.Errorf("seal: receipt for request %x: %d %s tokens, at most %d for this request: %w", h.RequestID, got, what, limit, ErrUsage)
}
