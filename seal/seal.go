// Package seal encrypts a request to a set of attested workers, frames the
// sealed answer chunk by chunk, and signs the usage receipt that ends it.
//
// # Request
//
// The client picks a fresh random 32-byte content key per request and wraps
// it with HPKE (RFC 9180, crypto/hpke) to each of the k workers it trusts to
// serve the request (1 ≤ k ≤ MaxRecipients, key IDs unique), so the proxy can
// pick the least loaded worker and fail over without asking the client again.
// The HPKE info is a domain tag and the recipient's key ID; the header hash is
// the additional data of the seal that wraps the content key, so a wrapped key
// opens only under the header the client wrote. Keeping the header out of the
// info lets a client encapsulate to a worker before it has a request
// (Prepare), which takes the KEM off the request's critical path. The body is sealed with AES-256-GCM under a key derived with HKDF
// from the content key (salt: the header hash) and with the header hash as
// additional data. The header travels in the clear so that the proxy can
// route and meter; the client's Ed25519 account key (Header.ClientKey) signs
// the whole envelope except the signature itself. The header names the one
// proxy that may relay the request (Header.Proxy, the hash of its TLS key):
// a proxy refuses an envelope naming another, and a worker one naming a
// proxy other than the one it is connected to, so one proxy cannot bill a
// request through another.
//
// The suite is fixed by the envelope version: KEM MLKEM768-X25519 (X-Wing,
// the default) or DHKEM(X25519), KDF HKDF-SHA256, AEAD AES-256-GCM.
// AES-256-GCM rather than ChaCha20-Poly1305 because every TEE host (TDX,
// SEV-SNP) has AES-NI and carry-less multiply, where GCM is the faster of
// the two, and its 256-bit key matches the margin the post-quantum KEM buys.
//
// # Response
//
// The design calls the response key "exported from the same HPKE context".
// With k recipients there are k contexts and none is shared with the client,
// so the sound equivalent is to derive it from the content key, which the
// client and every recipient hold, under its own HKDF label. One more input
// goes into it: a random 32-byte salt that the worker picks when it opens the
// request and sends in the clear with the first chunk. Without it, a request
// replayed to two workers (or retried after a failure) would seal two
// different answers under the same key and nonces, and GCM leaks the XOR of
// the plaintexts and its authentication key to whoever sees both.
//
// Chunk i is sealed with the nonce (final flag, i) and additional data
// tag ‖ header hash ‖ i ‖ final. The client opens chunks strictly in order,
// so a chunk reordered, dropped, duplicated, spliced in from another request
// or another worker's answer, or tampered with fails to open, and a stream
// that ends without its final chunk leaves ClientSession.Finished false: an
// error, not a short answer. The same framing carries the final flag and the
// index in the clear so the proxy can meter, and can lie about neither.
//
// A chunk's plaintext is framed (u32 length ‖ bytes) and padded with zeros
// to PaddedSize: MinPadded (512) bytes or the next power of two. One sealed
// chunk per token would otherwise tell the proxy each token's length; padded,
// every token of a stream seals to one size (TestChunkSizesHideTokenLengths).
// The cost, measured with
//
//	go test ./seal -run x -bench ChunkPadding -benchtime 2000x
//
// on a stream of vLLM-shaped chunk objects (2 shared cores, December 2026):
// 545 against 297 bytes on the wire per chunk (×1.83), 11.7 against 11.1 µs
// to seal and open one (×1.05, within noise). The count and timing of chunks
// stay visible; the count is in the receipt anyway. Tokens are not coalesced
// per time slice: that would hide timing too, at the price of latency.
// After an error the worker seals its detail as the final chunk (SealError),
// carried in the clear error record, so error text crosses the proxy sealed.
//
// # Records and receipts
//
// Worker, proxy and client exchange one stream of records per request: sealed
// chunks, then the worker's receipt in the clear, or an error (a clear code,
// with the worker's text sealed as the final chunk). A receipt
// is signed by the worker's attested Ed25519 key and names the request, the
// header hash, the hashes of the sealed request and of the sealed answer, the
// token counts, the price and the cost, so that client, proxy and an auditor
// agree on what was served. Its usage may not exceed MaxUsage, a bound that
// worker, client and proxy each compute from the header and the body's
// length, so an engine that inflates its counts cannot overcharge. Every
// signature in the package signs a domain
// tag followed by the SHA-256 of the signed bytes.
//
// Signature checks (Envelope.VerifySignature, Receipt.Verify, and so
// Open and ClientSession.CheckReceipt) are remembered for the process: roles
// that share one (`cocoon up`, tests) verify each signature once, not once per
// role. The memo is keyed by a hash of key, message and signature, so it
// answers exactly as a fresh check would.
//
// # Replays
//
// A worker remembers the envelopes it served until they expire (ReplayCache),
// so the proxy cannot have one worker serve a request twice. The proxy may
// send one request to several of its k workers — that is how it fails over —
// but each answer then has its own key, and each worker's receipt names it, so
// the duplicate is visible to an auditor and paid for by the proxy alone.
//
// # Encodings
//
// Envelopes and receipts start with a 4-byte magic and a version byte, write
// integers big-endian and put a u32 length before every variable-length
// field. Parsing is strict: wrong magic or version, lengths over the limits,
// bytes left over, or duplicate key IDs are errors, so each value has exactly
// one encoding. Sessions are not safe for concurrent use.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/cocoon-go/cocoon/internal/binenc"
)

// KEM identifiers (RFC 9180 and draft-ietf-hpke-pq).
const (
	KEMMLKEM768X25519 uint16 = 0x647a // MLKEM768-X25519 (X-Wing), the default
	KEMX25519         uint16 = 0x0020 // DHKEM(X25519, HKDF-SHA256)
)

// Limits.
const (
	MaxEnvelope   = 8 << 20 // bytes of a whole envelope
	MaxRecord     = 1 << 20 // bytes of one record payload
	MaxRecipients = 8       // wrapped keys in one envelope
	MaxModel      = 256     // bytes of a model name
	// MaxChunk is the most plaintext one chunk can carry: the sealed chunk,
	// salt, length and tag included, must fit in one record.
	MaxChunk = MaxRecord - chunkHeaderSize - saltSize - lengthSize - tagSize
)

// Endpoints a header may name.
const (
	EndpointChat        = "chat/completions"
	EndpointCompletions = "completions"
)

// Errors that callers branch on. Every error the package returns wraps at
// most one of them and names what failed.
var (
	ErrMalformed      = errors.New("malformed")                 // bytes that do not parse
	ErrVersion        = errors.New("unsupported version")       // a magic this package knows with a version it does not
	ErrTooLarge       = errors.New("too large")                 // over MaxEnvelope, MaxRecord, MaxChunk or another limit
	ErrUnsupportedKEM = errors.New("unsupported KEM")           // a KEM other than the two above
	ErrRecipients     = errors.New("bad recipient set")         // none, too many, duplicate key IDs, or a bad public key
	ErrNotRecipient   = errors.New("not a recipient")           // the envelope has no key for this key ID
	ErrSignature      = errors.New("bad signature")             // an envelope or receipt signature does not verify
	ErrDecrypt        = errors.New("decryption failed")         // a wrapped key, body or chunk does not authenticate
	ErrChunkOrder     = errors.New("chunk out of order")        // a chunk other than the next one
	ErrFinished       = errors.New("stream already finished")   // a chunk after the final one
	ErrTruncated      = errors.New("stream not finished")       // a receipt before the final chunk
	ErrCost           = errors.New("cost does not match usage") // a receipt whose cost is not its price times its usage
	ErrReceipt        = errors.New("receipt does not match request")
	ErrUsage          = errors.New("usage over what the request allows") // a receipt over MaxUsage
	ErrExpired        = errors.New("request expired")
	ErrReplay         = errors.New("request replayed")
)

// parseError reports a failure to parse what: it reads "seal: what: ...",
// wraps ErrTooLarge, ErrVersion or ErrMalformed by the kind of failure, and
// keeps the binenc error under it.
func parseError(what string, err error) error {
	kind := ErrMalformed
	switch {
	case errors.Is(err, binenc.ErrTooLarge):
		kind = ErrTooLarge
	case errors.Is(err, binenc.ErrVersion):
		kind = ErrVersion
	}
	return fmt.Errorf("seal: %s: %w: %w", what, kind, err)
}

// Domain tags, one per use of a key or a hash, each ending in a zero byte so
// that none is a prefix of another.
const (
	tagHeader       = "cocoon/seal/v1/header\x00"
	tagEnvelope     = "cocoon/seal/v1/envelope\x00"
	tagWrap         = "cocoon/seal/v1/wrap\x00"
	tagBody         = "cocoon/seal/v1/body\x00"
	tagResponseKey  = "cocoon/seal/v1/response-key\x00"
	tagChunk        = "cocoon/seal/v1/chunk\x00"
	tagResponseHash = "cocoon/seal/v1/response-hash\x00"
	tagReceipt      = "cocoon/seal/v1/receipt\x00"
)

const (
	keySize  = 32 // content key, body key, response key
	saltSize = 32 // response salt
	tagSize  = 16 // GCM tag
)

var (
	hpkeKDF  = hpke.HKDFSHA256()
	hpkeAEAD = hpke.AES256GCM()
)

// newAEAD returns AES-256-GCM under the key HKDF-Expand(prk, info).
func newAEAD(prk []byte, info string) (cipher.AEAD, error) {
	key, err := hkdf.Expand(sha256.New, prk, info, keySize)
	if err != nil {
		return nil, fmt.Errorf("seal: derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: derive key: %w", err)
	}
	return cipher.NewGCM(block)
}

// extract turns the content key into the pseudorandom key every other key of
// the request is expanded from; the header hash is the salt.
func extract(contentKey []byte, headerHash [32]byte) ([]byte, error) {
	prk, err := hkdf.Extract(sha256.New, contentKey, headerHash[:])
	if err != nil {
		return nil, fmt.Errorf("seal: extract content key: %w", err)
	}
	return prk, nil
}

// signedMessage is what an Ed25519 signature in this package signs: a domain
// tag and the SHA-256 of the signed bytes. Signing a digest rather than the
// bytes themselves keeps an 8 MiB envelope from being copied to prepend the
// tag, and any plain Ed25519 implementation can produce it.
func signedMessage(tag string, parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum([]byte(tag))
}
