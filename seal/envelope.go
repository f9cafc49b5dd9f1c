package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/cocoon-go/cocoon/internal/binenc"
)

const (
	envelopeMagic   = "CCNE"
	envelopeVersion = 2                 // 2: the header names its proxy; chunks are padded
	wrappedSize     = keySize + tagSize // a content key sealed under HPKE
	sigSize         = ed25519.SignatureSize
)

// Recipient is a worker a request is sealed to.
type Recipient struct {
	KeyID     [32]byte // hash of the worker's key bundle
	PublicKey []byte   // the worker's encoded HPKE public key, as PrivateKey.PublicKey returns it
}

// WrappedKey is the content key of one request sealed with HPKE to one recipient.
type WrappedKey struct {
	KeyID  [32]byte // the recipient's key ID
	Enc    []byte   // HPKE encapsulated key: 1120 bytes for MLKEM768-X25519, 32 for X25519
	Sealed []byte   // the content key sealed in the HPKE context, 48 bytes
}

// Envelope is a sealed request as it travels from client through proxy to
// worker: the clear header, one wrapped key per candidate worker, the sealed
// body and the client's signature over all of it.
type Envelope struct {
	Header    Header
	Keys      []WrappedKey
	Body      []byte // the request body under AES-256-GCM, tag included
	Signature []byte // the client's Ed25519 signature
}

// Seal seals body to the recipients in to, binds the header h into the
// sealed context, and signs the envelope with the client's account key.
// When h.ClientKey is nil it is set to the public half of client; otherwise
// it must be that key. The session opens the answer.
func Seal(h Header, body []byte, to []Recipient, client ed25519.PrivateKey) (raw []byte, s *ClientSession, err error) {
	prepared := make([]*Prepared, len(to))
	for i, r := range to {
		if prepared[i], err = Prepare(r); err != nil {
			return nil, nil, err
		}
	}
	return SealPrepared(h, body, prepared, client)
}

// Prepared is an HPKE encapsulation to one recipient, made before the
// request it will carry exists. The encapsulation (an ML-KEM and an X25519
// operation for the default KEM) is most of the cost of sealing, so a client
// can keep a few per worker ready and take them off a request's critical
// path. The header is bound when the content key is sealed, as additional
// data. A Prepared seals exactly one request.
type Prepared struct {
	keyID  [32]byte
	enc    []byte
	sender *hpke.Sender
	used   atomic.Bool
}

// Prepare encapsulates a fresh HPKE context to r.
func Prepare(r Recipient) (*Prepared, error) {
	pk, err := parsePublicKey(r.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("seal: recipient %x: %w: %v", r.KeyID, ErrRecipients, err)
	}
	enc, sender, err := hpke.NewSender(pk, hpkeKDF, hpkeAEAD, wrapInfo(r.KeyID))
	if err != nil {
		return nil, fmt.Errorf("seal: recipient %x: %w: %w", r.KeyID, ErrRecipients, err)
	}
	return &Prepared{keyID: r.KeyID, enc: enc, sender: sender}, nil
}

// KeyID is the key ID of the recipient p was prepared for.
func (p *Prepared) KeyID() [32]byte { return p.keyID }

// SealPrepared is Seal with encapsulations made ahead by Prepare. Each
// Prepared is used up, even when SealPrepared fails.
func SealPrepared(h Header, body []byte, to []*Prepared, client ed25519.PrivateKey) (raw []byte, s *ClientSession, err error) {
	for _, p := range to {
		if p == nil || p.used.Swap(true) {
			return nil, nil, fmt.Errorf("seal: a prepared encapsulation is missing or was used before: %w", ErrRecipients)
		}
	}
	if len(client) != ed25519.PrivateKeySize {
		return nil, nil, fmt.Errorf("seal: client private key of %d bytes: %w", len(client), ErrMalformed)
	}
	pub := client.Public().(ed25519.PublicKey)
	if h.ClientKey == nil {
		h.ClientKey = pub
	} else if !bytes.Equal(h.ClientKey, pub) {
		return nil, nil, fmt.Errorf("seal: header client key %x is not the signing key %x: %w", []byte(h.ClientKey), []byte(pub), ErrMalformed)
	}
	if err := h.Validate(); err != nil {
		return nil, nil, err
	}
	if err := checkKeyIDs(len(to), func(i int) [32]byte { return to[i].keyID }, ErrRecipients); err != nil {
		return nil, nil, err
	}
	ids := make([][32]byte, len(to))
	env := Envelope{Header: h, Keys: make([]WrappedKey, len(to))}
	for i, p := range to {
		ids[i] = p.keyID
		// A placeholder of the right size, so the envelope can be measured
		// before any work is done.
		env.Keys[i] = WrappedKey{KeyID: p.keyID, Enc: p.enc, Sealed: make([]byte, wrappedSize)}
	}
	size := len(env.appendHead(nil, 0)) + len(body) + tagSize + sigSize
	if size > MaxEnvelope {
		return nil, nil, fmt.Errorf("seal: envelope of %d bytes (body %d): %w, limit %d", size, len(body), ErrTooLarge, MaxEnvelope)
	}

	hh := h.Hash()
	contentKey := make([]byte, keySize)
	rand.Read(contentKey)
	for i, p := range to {
		ct, err := p.sender.Seal(hh[:], contentKey)
		if err != nil {
			return nil, nil, fmt.Errorf("seal: wrap key for recipient %x: %w: %w", p.keyID, ErrRecipients, err)
		}
		env.Keys[i].Sealed = ct
	}
	prk, err := extract(contentKey, hh)
	if err != nil {
		return nil, nil, err
	}
	aead, err := newAEAD(prk, tagBody)
	if err != nil {
		return nil, nil, err
	}
	raw = env.appendHead(make([]byte, 0, size), len(body)+tagSize)
	raw = aead.Seal(raw, bodyNonce[:], body, bodyAAD(hh))
	raw = append(raw, ed25519.Sign(client, signedMessage(tagEnvelope, raw))...)
	s = &ClientSession{header: h, headerHash: hh, requestHash: sha256.Sum256(raw), bodyLen: len(body), prk: prk, recipients: ids}
	return raw, s, nil
}

var bodyNonce [12]byte // the body key seals exactly one message

func bodyAAD(hh [32]byte) []byte { return append([]byte(tagBody), hh[:]...) }

// wrapInfo is the HPKE info of the context that wraps the content key for
// keyID. The header is bound as the additional data of that seal, so the
// context itself can be set up before the header exists (see Prepare).
func wrapInfo(keyID [32]byte) []byte {
	return append([]byte(tagWrap), keyID[:]...)
}

// checkKeyIDs checks the number of recipients and that their key IDs are
// unique; its errors wrap kind.
func checkKeyIDs(n int, id func(int) [32]byte, kind error) error {
	if n < 1 || n > MaxRecipients {
		return fmt.Errorf("seal: %d recipients, want 1 to %d: %w", n, MaxRecipients, kind)
	}
	for i := range n {
		for j := range i {
			if id(i) == id(j) {
				return fmt.Errorf("seal: key ID %x appears twice: %w", id(i), kind)
			}
		}
	}
	return nil
}

// appendHead appends everything the envelope encodes before the body bytes,
// with bodyLen as the body's length.
func (e *Envelope) appendHead(b []byte, bodyLen int) []byte {
	b = binenc.AppendMagic(b, envelopeMagic, envelopeVersion)
	b = e.Header.append(b)
	b = append(b, byte(len(e.Keys)))
	for _, k := range e.Keys {
		b = append(b, k.KeyID[:]...)
		b = binenc.AppendBytes(b, k.Enc)
		b = binenc.AppendBytes(b, k.Sealed)
	}
	return binenc.AppendU32(b, uint32(bodyLen))
}

// ParseEnvelope parses a sealed request and checks its structure and limits.
// It checks neither the signature nor anything sealed: the proxy, which holds
// no key, uses it to route. The envelope shares memory with raw.
func ParseEnvelope(raw []byte) (*Envelope, error) {
	if len(raw) > MaxEnvelope {
		return nil, fmt.Errorf("seal: envelope of %d bytes: %w, limit %d", len(raw), ErrTooLarge, MaxEnvelope)
	}
	d := binenc.NewDecoder(raw)
	d.Magic(envelopeMagic, envelopeVersion)
	e := &Envelope{Header: readHeader(d)}
	n := d.U8("key count")
	for i := 0; i < int(n) && d.Err() == nil; i++ {
		var k WrappedKey
		d.Fixed("key ID", k.KeyID[:])
		k.Enc = d.BytesNoCopy("encapsulated key", 0, maxEncSize)
		k.Sealed = d.BytesNoCopy("wrapped key", 0, wrappedSize)
		e.Keys = append(e.Keys, k)
	}
	e.Body = d.BytesNoCopy("body", 0, MaxEnvelope)
	e.Signature = d.FixedNoCopy("signature", sigSize)
	if err := d.Finish(); err != nil {
		return nil, parseError("envelope", err)
	}
	if err := e.validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// validate checks what ParseEnvelope checks, for envelopes built by hand.
func (e *Envelope) validate() error {
	if err := e.Header.Validate(); err != nil {
		return err
	}
	if err := checkKeyIDs(len(e.Keys), func(i int) [32]byte { return e.Keys[i].KeyID }, ErrMalformed); err != nil {
		return err
	}
	for _, k := range e.Keys {
		n := len(k.Enc)
		if n != encSize(KEMX25519) && n != encSize(KEMMLKEM768X25519) || len(k.Sealed) != wrappedSize {
			return fmt.Errorf("seal: envelope: %w: key %x: encapsulated key of %d bytes, wrapped key of %d", ErrMalformed, k.KeyID, len(k.Enc), len(k.Sealed))
		}
	}
	if len(e.Body) < tagSize {
		return fmt.Errorf("seal: envelope: %w: body of %d bytes", ErrMalformed, len(e.Body))
	}
	if len(e.Signature) != sigSize {
		return fmt.Errorf("seal: envelope: %w: signature of %d bytes", ErrMalformed, len(e.Signature))
	}
	if n := len(e.appendHead(nil, 0)) + len(e.Body) + sigSize; n > MaxEnvelope {
		return fmt.Errorf("seal: envelope of %d bytes: %w, limit %d", n, ErrTooLarge, MaxEnvelope)
	}
	return nil
}

// VerifySignature checks the client's Ed25519 signature, by Header.ClientKey,
// over everything in the envelope but the signature itself.
func (e *Envelope) VerifySignature() error {
	if err := e.validate(); err != nil {
		return err
	}
	return e.verifySignature()
}

func (e *Envelope) verifySignature() error {
	msg := signedMessage(tagEnvelope, e.appendHead(nil, len(e.Body)), e.Body)
	if !verifyEd25519(e.Header.ClientKey, msg, e.Signature) {
		return fmt.Errorf("seal: envelope %x: client %x: %w", e.Header.RequestID, []byte(e.Header.ClientKey), ErrSignature)
	}
	return nil
}

// Open parses raw, verifies the client's signature, unwraps the content key
// sealed to keyID with k, and opens the body. The session seals the answer.
// Open does not check the expiry or replays; see ReplayCache.
func Open(raw []byte, keyID [32]byte, k *PrivateKey) (env *Envelope, body []byte, s *WorkerSession, err error) {
	if k == nil {
		return nil, nil, nil, fmt.Errorf("seal: open with a nil key")
	}
	if env, err = ParseEnvelope(raw); err != nil {
		return nil, nil, nil, err
	}
	// The signature is checked while the key is unwrapped: both are needed,
	// and on two cores they take half the time side by side.
	parsed := env
	sigErr := make(chan error, 1)
	go func() { sigErr <- parsed.verifySignature() }()
	env, body, s, err = open(parsed, raw, keyID, k)
	if serr := <-sigErr; serr != nil {
		return nil, nil, nil, serr
	}
	return env, body, s, err
}

// open unwraps the content key for keyID and opens the body of env.
func open(env *Envelope, raw []byte, keyID [32]byte, k *PrivateKey) (_ *Envelope, body []byte, s *WorkerSession, err error) {
	i := slices.IndexFunc(env.Keys, func(w WrappedKey) bool { return w.KeyID == keyID })
	if i < 0 {
		return nil, nil, nil, fmt.Errorf("seal: envelope %x: key ID %x: %w", env.Header.RequestID, keyID, ErrNotRecipient)
	}
	w := env.Keys[i]
	hh := env.Header.Hash()
	var contentKey []byte
	rcpt, err := hpke.NewRecipient(w.Enc, k.sk, hpkeKDF, hpkeAEAD, wrapInfo(keyID))
	if err == nil {
		contentKey, err = rcpt.Open(hh[:], w.Sealed)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("seal: envelope %x: unwrap key for %x: %w: %w", env.Header.RequestID, keyID, ErrDecrypt, err)
	}
	if len(contentKey) != keySize {
		return nil, nil, nil, fmt.Errorf("seal: envelope %x: content key of %d bytes: %w", env.Header.RequestID, len(contentKey), ErrMalformed)
	}
	prk, err := extract(contentKey, hh)
	if err != nil {
		return nil, nil, nil, err
	}
	aead, err := newAEAD(prk, tagBody)
	if err != nil {
		return nil, nil, nil, err
	}
	if body, err = aead.Open(nil, bodyNonce[:], env.Body, bodyAAD(hh)); err != nil {
		return nil, nil, nil, fmt.Errorf("seal: envelope %x: body: %w: %w", env.Header.RequestID, ErrDecrypt, err)
	}
	if s, err = newWorkerSession(env.Header, hh, sha256.Sum256(raw), keyID, len(body), prk); err != nil {
		return nil, nil, nil, err
	}
	return env, body, s, nil
}
