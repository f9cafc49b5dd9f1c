package seal

import (
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"slices"
	"time"

	"github.com/cocoon-go/cocoon/price"
)

// A sealed chunk is
//
//	flags (1 byte: 1 if final, else 0) ‖ index (u64) ‖ salt (32 bytes, chunk 0 only) ‖ ciphertext ‖ tag
//
// sealed under the response key with nonce flags ‖ 0 0 0 ‖ index and
// additional data tag ‖ header hash ‖ index ‖ flags. The ciphertext seals
//
//	length (u32) ‖ plaintext ‖ zero bytes up to PaddedSize(4 + length)
//
// so that the proxy, which sees chunk sizes, cannot tell one token's length
// from another's.
const (
	chunkHeaderSize = 1 + 8
	lengthSize      = 4
)

// MinPadded is the smallest padded chunk plaintext: more than one streamed
// object (a chat.completion.chunk of about 150 to 350 bytes, whatever token
// it carries) takes, so that every token of a stream seals to the same size.
const MinPadded = 512

// PaddedSize returns the size that n bytes of framed chunk plaintext (length
// prefix included) are padded to before sealing: MinPadded, or the next
// power of two, and never more than a record can carry.
func PaddedSize(n int) int {
	size := MinPadded
	for size < n {
		size *= 2
	}
	return min(size, MaxChunk+lengthSize)
}

// WorkerSession seals the answer to one request, chunk by chunk.
type WorkerSession struct {
	header      Header
	headerHash  [32]byte
	requestHash [32]byte
	bodyLen     int // bytes of the opened body, for MaxUsage
	keyID       [32]byte
	salt        [saltSize]byte
	aead        cipher.AEAD
	next        uint64 // index of the next chunk
	done        bool   // the final chunk was sealed
	hash        ResponseHasher
	pad         func(int) int // PaddedSize; tests may measure without it
}

func newWorkerSession(h Header, hh, requestHash, keyID [32]byte, bodyLen int, prk []byte) (*WorkerSession, error) {
	s := &WorkerSession{header: h, headerHash: hh, requestHash: requestHash, keyID: keyID, bodyLen: bodyLen, pad: PaddedSize}
	rand.Read(s.salt[:])
	var err error
	if s.aead, err = newAEAD(prk, responseInfo(s.salt)); err != nil {
		return nil, err
	}
	return s, nil
}

func responseInfo(salt [saltSize]byte) string { return tagResponseKey + string(salt[:]) }

// chunkParams returns the nonce and additional data of chunk i.
func chunkParams(hh [32]byte, i uint64, final bool) (nonce [12]byte, aad []byte) {
	var flag byte
	if final {
		flag = 1
	}
	nonce[0] = flag
	binary.BigEndian.PutUint64(nonce[4:], i)
	aad = make([]byte, 0, len(tagChunk)+32+8+1)
	aad = append(append(aad, tagChunk...), hh[:]...)
	return nonce, append(binary.BigEndian.AppendUint64(aad, i), flag)
}

// SealChunk seals the next chunk of the answer, padded (see PaddedSize). The
// last chunk must be sealed with final set; there is none after it. A chunk
// carries at most MaxChunk bytes and may be empty.
func (s *WorkerSession) SealChunk(plaintext []byte, final bool) ([]byte, error) {
	if s.done {
		return nil, fmt.Errorf("seal: request %x: chunk %d: %w", s.header.RequestID, s.next, ErrFinished)
	}
	if len(plaintext) > MaxChunk {
		return nil, fmt.Errorf("seal: request %x: chunk %d of %d bytes: %w, limit %d", s.header.RequestID, s.next, len(plaintext), ErrTooLarge, MaxChunk)
	}
	nonce, aad := chunkParams(s.headerHash, s.next, final)
	size := max(s.pad(lengthSize+len(plaintext)), lengthSize+len(plaintext))
	out := make([]byte, 0, chunkHeaderSize+saltSize+size+tagSize)
	out = binary.BigEndian.AppendUint64(append(out, nonce[0]), s.next)
	if s.next == 0 {
		out = append(out, s.salt[:]...)
	}
	// The frame is written where its ciphertext goes, and sealed in place.
	start := len(out)
	out = binary.BigEndian.AppendUint32(out, uint32(len(plaintext)))
	out = append(out, plaintext...)
	out = out[:start+size] // zeros: the capacity is fresh
	out = s.aead.Seal(out[:start], nonce[:], out[start:], aad)
	s.hash.Add(out)
	s.next++
	s.done = final
	return out, nil
}

// SealError seals detail, the worker's error about this request, as the
// final chunk: the answer ends there, without a receipt. The worker sends it
// inside the clear error record (whose own text is a fixed code), so that
// error text, which may quote the prompt or come from the engine, reaches
// only the client (ClientSession.OpenError).
func (s *WorkerSession) SealError(detail []byte) ([]byte, error) {
	return s.SealChunk(detail, true)
}

// Finished reports whether the final chunk has been sealed.
func (s *WorkerSession) Finished() bool { return s.done }

// ResponseHash returns the hash of the chunks sealed so far, in order.
func (s *WorkerSession) ResponseHash() [32]byte { return s.hash.Sum() }

// RequestHash returns the SHA-256 of the envelope as received.
func (s *WorkerSession) RequestHash() [32]byte { return s.requestHash }

// Receipt returns the unsigned receipt for the answer sealed so far, with
// the cost of usage at p. It is an error before the final chunk (a receipt
// always ends a whole answer), and for a price over the header's cap or
// usage over MaxUsage (see Bound): the client would refuse such a receipt.
func (s *WorkerSession) Receipt(usage price.Usage, p price.Price, now time.Time) (*Receipt, error) {
	if !s.done {
		return nil, fmt.Errorf("seal: receipt for request %x after %d chunks: %w", s.header.RequestID, s.next, ErrTruncated)
	}
	if err := s.header.allows(p, usage, s.bodyLen); err != nil {
		return nil, err
	}
	cost, err := p.Cost(usage)
	if err != nil {
		return nil, fmt.Errorf("seal: receipt for request %x: %w", s.header.RequestID, err)
	}
	return &Receipt{
		RequestID:    s.header.RequestID,
		HeaderHash:   s.headerHash,
		RequestHash:  s.requestHash,
		ResponseHash: s.hash.Sum(),
		Worker:       s.keyID,
		Model:        s.header.Model,
		Usage:        usage,
		Price:        p,
		Cost:         cost,
		Time:         now.Unix(),
	}, nil
}

// ClientSession opens the answer to one request, chunk by chunk. After any
// error it refuses everything: a stream that failed once is not trusted again.
type ClientSession struct {
	header      Header
	headerHash  [32]byte
	requestHash [32]byte
	bodyLen     int // bytes of the sealed body, for MaxUsage
	prk         []byte
	recipients  [][32]byte
	aead        cipher.AEAD // set by chunk 0
	next        uint64
	done        bool
	err         error
	hash        ResponseHasher
}

// OpenChunk opens the next chunk of the answer. Chunks must come in the
// order they were sealed; a chunk reordered, dropped, duplicated, spliced in
// from another request or another worker, or tampered with is an error, and
// so is a chunk after the final one.
func (s *ClientSession) OpenChunk(sealed []byte) (plaintext []byte, final bool, err error) {
	if s.err != nil {
		return nil, false, s.err
	}
	plaintext, final, err = s.open(sealed)
	if err != nil {
		s.err = err
		return nil, false, err
	}
	s.hash.Add(sealed)
	s.next++
	s.done = final
	return plaintext, final, nil
}

func (s *ClientSession) open(sealed []byte) ([]byte, bool, error) {
	id := s.header.RequestID
	if s.done {
		return nil, false, fmt.Errorf("seal: request %x: chunk after the final one: %w", id, ErrFinished)
	}
	if len(sealed) < chunkHeaderSize || sealed[0] > 1 {
		return nil, false, fmt.Errorf("seal: request %x: chunk %d: %w: no valid chunk header", id, s.next, ErrMalformed)
	}
	final := sealed[0] == 1
	if i := binary.BigEndian.Uint64(sealed[1:]); i != s.next {
		return nil, false, fmt.Errorf("seal: request %x: got chunk %d, want %d: %w", id, i, s.next, ErrChunkOrder)
	}
	least := chunkHeaderSize + tagSize
	if s.next == 0 {
		least += saltSize
	}
	if len(sealed) < least || len(sealed) > MaxRecord {
		return nil, false, fmt.Errorf("seal: request %x: chunk %d of %d bytes: %w", id, s.next, len(sealed), ErrMalformed)
	}
	ct := sealed[chunkHeaderSize:]
	if s.next == 0 {
		aead, err := newAEAD(s.prk, responseInfo([saltSize]byte(ct[:saltSize])))
		if err != nil {
			return nil, false, err
		}
		s.aead, ct = aead, ct[saltSize:]
	}
	nonce, aad := chunkParams(s.headerHash, s.next, final)
	frame, err := s.aead.Open(nil, nonce[:], ct, aad)
	if err != nil {
		return nil, false, fmt.Errorf("seal: request %x: chunk %d: %w: %w", id, s.next, ErrDecrypt, err)
	}
	// Authentic, so a bad frame is the worker's bug, not an attack; still
	// exactly one encoding: the length fits and the padding is zeros.
	if len(frame) < lengthSize {
		return nil, false, fmt.Errorf("seal: request %x: chunk %d: %w: no length", id, s.next, ErrMalformed)
	}
	n := binary.BigEndian.Uint32(frame)
	rest := frame[lengthSize:]
	if uint64(n) > uint64(len(rest)) || slices.ContainsFunc(rest[n:], func(b byte) bool { return b != 0 }) {
		return nil, false, fmt.Errorf("seal: request %x: chunk %d: %w: bad length or padding", id, s.next, ErrMalformed)
	}
	return rest[:n:n], final, nil
}

// OpenError opens the error detail a worker sealed with SealError: the next
// chunk, which must be the final one. No receipt follows it.
func (s *ClientSession) OpenError(sealed []byte) ([]byte, error) {
	detail, final, err := s.OpenChunk(sealed)
	if err != nil {
		return nil, err
	}
	if !final {
		s.err = fmt.Errorf("seal: request %x: error detail in chunk %d is not final: %w", s.header.RequestID, s.next-1, ErrMalformed)
		return nil, s.err
	}
	return detail, nil
}

// Finished reports whether the final chunk has been opened. An answer that
// ends before it is truncated and must be treated as an error.
func (s *ClientSession) Finished() bool { return s.done }

// ResponseHash returns the hash of the chunks opened so far, in order.
func (s *ClientSession) ResponseHash() [32]byte { return s.hash.Sum() }

// RequestHash returns the SHA-256 of the envelope Seal returned.
func (s *ClientSession) RequestHash() [32]byte { return s.requestHash }

// HeaderHash returns the hash of the request's header.
func (s *ClientSession) HeaderHash() [32]byte { return s.headerHash }

// CheckReceipt checks the receipt that ends the answer: signed by pub (the
// Ed25519 key in the bundle of r.Worker), cost consistent with usage, after
// the final chunk, and about this request and the answer as opened: request
// id, header, request and response hashes, model, a worker the request was
// sealed to, a price within the cap and usage within MaxUsage of the header
// and the body as sealed, so an engine that inflates its counts costs the
// client nothing.
func (s *ClientSession) CheckReceipt(r *Receipt, pub ed25519.PublicKey) error {
	if !s.done {
		return fmt.Errorf("seal: receipt for request %x: %w", s.header.RequestID, ErrTruncated)
	}
	if err := r.Verify(pub); err != nil {
		return err
	}
	h := &s.header
	var what string
	switch {
	case r.RequestID != h.RequestID:
		what = "request id"
	case r.HeaderHash != s.headerHash:
		what = "header hash"
	case r.RequestHash != s.requestHash:
		what = "request hash"
	case r.ResponseHash != s.hash.Sum():
		what = "response hash"
	case r.Model != h.Model:
		what = "model"
	case !slices.Contains(s.recipients, r.Worker):
		what = "worker"
	default:
		return h.allows(r.Price, r.Usage, s.bodyLen)
	}
	return fmt.Errorf("seal: receipt for request %x: %s: %w", h.RequestID, what, ErrReceipt)
}

// ResponseHasher hashes a stream of sealed chunks the way receipts do, so
// the proxy can check a receipt against the chunks it relayed. The zero
// value is ready to use.
type ResponseHasher struct {
	h hash.Hash
}

// Add hashes the next sealed chunk.
func (r *ResponseHasher) Add(sealed []byte) {
	if r.h == nil {
		r.h = sha256.New()
		r.h.Write([]byte(tagResponseHash))
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(sealed)))
	r.h.Write(n[:])
	r.h.Write(sealed)
}

// Sum returns the hash of the chunks added so far.
func (r *ResponseHasher) Sum() [32]byte {
	if r.h == nil {
		return sha256.Sum256([]byte(tagResponseHash))
	}
	var out [32]byte
	r.h.Sum(out[:0])
	return out
}
