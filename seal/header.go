package seal

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"unicode/utf8"

	"github.com/cocoon-go/cocoon/internal/binenc"
	"github.com/cocoon-go/cocoon/price"
)

// Header holds the routing fields of a request. They travel in the clear so
// that the proxy can route and meter, and are bound into the sealed context
// (HPKE info, AEAD additional data, the client's signature), so that the
// proxy cannot change them.
type Header struct {
	RequestID [16]byte          // random, chosen by the client; never zero
	Endpoint  string            // EndpointChat or EndpointCompletions
	Model     string            // 1 to MaxModel bytes of UTF-8
	MaxTokens uint32            // most completion tokens to generate, at most MaxTokenLimit; 0: DefaultMaxTokens
	Stream    bool              // the app asked for a stream
	PriceCap  price.Price       // the most the client will pay
	Expires   int64             // unix seconds; workers refuse an expired request
	ClientKey ed25519.PublicKey // the client's account key; it signs the envelope
	// Proxy is the SHA-256 of the TLS public key (SubjectPublicKeyInfo) of
	// the one proxy that may relay the request, as identity.CertKeyHash
	// computes it: the client's pin, or the key of the proxy it reached.
	// That proxy refuses an envelope naming another, and so does a worker
	// connected to another, so no proxy can bill a request through a second.
	Proxy [32]byte
}

// Completion token limits. Every comparison of token counts is made in
// uint64, so no limit can wrap.
const (
	// MaxTokenLimit is the largest max_tokens a request may ask for: 2^20,
	// above the output limit of any model served today, and far below 2^32,
	// where the header's field would wrap.
	MaxTokenLimit = 1 << 20
	// DefaultMaxTokens is the completion limit of a request whose header
	// says 0 ("the worker decides"): the worker runs its engine with it,
	// and receipts are bounded by it.
	DefaultMaxTokens = 16384
)

// TokenLimit returns the most completion tokens h allows: MaxTokens, or
// DefaultMaxTokens when it is 0.
func (h *Header) TokenLimit() uint64 {
	if h.MaxTokens == 0 {
		return DefaultMaxTokens
	}
	return uint64(h.MaxTokens)
}

// Validate reports whether h is a header a worker may serve.
func (h *Header) Validate() error {
	switch {
	case h.RequestID == [16]byte{}:
		return fmt.Errorf("seal: header: %w: zero request id", ErrMalformed)
	case h.Endpoint != EndpointChat && h.Endpoint != EndpointCompletions:
		return fmt.Errorf("seal: header: %w: unknown endpoint %q", ErrMalformed, h.Endpoint)
	case h.Model == "" || len(h.Model) > MaxModel || !utf8.ValidString(h.Model):
		return fmt.Errorf("seal: header: %w: model %.300q is not 1 to %d bytes of UTF-8", ErrMalformed, h.Model, MaxModel)
	case uint64(h.MaxTokens) > MaxTokenLimit:
		return fmt.Errorf("seal: header: %w: max tokens %d over the limit %d", ErrMalformed, h.MaxTokens, MaxTokenLimit)
	case h.Expires <= 0:
		return fmt.Errorf("seal: header: %w: expiry %d", ErrMalformed, h.Expires)
	case len(h.ClientKey) != ed25519.PublicKeySize:
		return fmt.Errorf("seal: header: %w: client key of %d bytes", ErrMalformed, len(h.ClientKey))
	case h.Proxy == [32]byte{}:
		return fmt.Errorf("seal: header: %w: no proxy named", ErrMalformed)
	}
	if err := h.PriceCap.Validate(); err != nil {
		return fmt.Errorf("seal: header: price cap: %w: %w", ErrMalformed, err)
	}
	return nil
}

// Hash returns the SHA-256 of a domain tag and the canonical encoding of h.
// Receipts, the HPKE info and every AEAD additional data carry it.
func (h *Header) Hash() [32]byte {
	return sha256.Sum256(h.append([]byte(tagHeader)))
}

// append appends the canonical encoding of h, valid or not.
func (h *Header) append(b []byte) []byte {
	b = append(b, h.RequestID[:]...)
	b = binenc.AppendBytes(b, []byte(h.Endpoint))
	b = binenc.AppendBytes(b, []byte(h.Model))
	b = binenc.AppendU32(b, h.MaxTokens)
	b = binenc.AppendBool(b, h.Stream)
	b = appendPrice(b, h.PriceCap)
	b = binenc.AppendU64(b, uint64(h.Expires))
	b = binenc.AppendBytes(b, h.ClientKey)
	return append(b, h.Proxy[:]...)
}

// readHeader reads a header; Envelope.validate checks it.
func readHeader(d *binenc.Decoder) Header {
	var h Header
	d.Fixed("request id", h.RequestID[:])
	h.Endpoint = string(d.BytesNoCopy("endpoint", 0, len(EndpointChat)))
	h.Model = string(d.BytesNoCopy("model", 0, MaxModel))
	h.MaxTokens = d.U32("max tokens")
	h.Stream = d.Bool("stream")
	h.PriceCap = readPrice(d, "price cap")
	h.Expires = int64(d.U64("expires"))
	h.ClientKey = d.Bytes("client key", 0, ed25519.PublicKeySize)
	d.Fixed("proxy", h.Proxy[:])
	return h
}

func appendPrice(b []byte, p price.Price) []byte {
	b = binenc.AppendU64(b, p.PerToken)
	b = binenc.AppendU64(b, p.PromptMul)
	b = binenc.AppendU64(b, p.CachedMul)
	return binenc.AppendU64(b, p.CompletionMul)
}

func readPrice(d *binenc.Decoder, field string) price.Price {
	return price.Price{
		PerToken:      d.U64(field),
		PromptMul:     d.U64(field),
		CachedMul:     d.U64(field),
		CompletionMul: d.U64(field),
	}
}
