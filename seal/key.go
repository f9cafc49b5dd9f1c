package seal

import (
	"crypto/ecdh"
	"crypto/hpke"
	"encoding/binary"
	"fmt"
	"sync"
)

// PrivateKey is an HPKE private key with its KEM id: a worker's request key.
type PrivateKey struct {
	sk  hpke.PrivateKey
	raw []byte // KEM id ‖ serialized private key, computed once
}

// kem returns the KEM for id, if this package supports it.
func kem(id uint16) (hpke.KEM, error) {
	switch id {
	case KEMMLKEM768X25519:
		return hpke.MLKEM768X25519(), nil
	case KEMX25519:
		return hpke.DHKEM(ecdh.X25519()), nil
	}
	return nil, fmt.Errorf("seal: KEM %#04x: %w", id, ErrUnsupportedKEM)
}

// encSize is the length of the encapsulated key each KEM produces.
func encSize(id uint16) int {
	if id == KEMX25519 {
		return 32
	}
	return 1120
}

const maxEncSize = 1120

// GenerateKey returns a new private key for the KEM kemID, one of
// KEMMLKEM768X25519 and KEMX25519.
func GenerateKey(kemID uint16) (*PrivateKey, error) {
	k, err := kem(kemID)
	if err != nil {
		return nil, err
	}
	sk, err := k.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("seal: generate %#04x key: %w", kemID, err)
	}
	return newPrivateKey(sk)
}

func newPrivateKey(sk hpke.PrivateKey) (*PrivateKey, error) {
	b, err := sk.Bytes()
	if err != nil {
		return nil, fmt.Errorf("seal: serialize private key: %w", err)
	}
	return &PrivateKey{sk: sk, raw: append(binary.BigEndian.AppendUint16(nil, sk.KEM().ID()), b...)}, nil
}

// ParsePrivateKey parses the output of PrivateKey.Bytes.
func ParsePrivateKey(b []byte) (*PrivateKey, error) {
	id, rest, err := splitKEM(b, "private key")
	if err != nil {
		return nil, err
	}
	k, err := kem(id)
	if err != nil {
		return nil, err
	}
	sk, err := k.NewPrivateKey(rest)
	if err != nil {
		return nil, fmt.Errorf("seal: private key for KEM %#04x: %w: %w", id, ErrMalformed, err)
	}
	return newPrivateKey(sk)
}

// Bytes encodes k as its KEM id (2 bytes, big-endian) followed by the
// RFC 9180 serialization of the private key. Keep it secret.
func (k *PrivateKey) Bytes() []byte { return append([]byte(nil), k.raw...) }

// KEM returns the KEM id of k.
func (k *PrivateKey) KEM() uint16 { return k.sk.KEM().ID() }

// PublicKey encodes the public half of k as its KEM id (2 bytes,
// big-endian) followed by the RFC 9180 serialization of the public key.
// This is what goes into the worker's key bundle.
func (k *PrivateKey) PublicKey() []byte {
	return append(binary.BigEndian.AppendUint16(nil, k.KEM()), k.sk.PublicKey().Bytes()...)
}

// CheckPublicKey reports whether b is an encoded public key of a supported KEM.
func CheckPublicKey(b []byte) error {
	_, err := parsePublicKey(b)
	return err
}

// publicKeys remembers recently parsed public keys. Parsing an X-Wing key
// expands its ML-KEM matrix (about 25 µs, a tenth of an encapsulation), and
// a client encapsulates to the same few workers over and over. Keys are
// public and parsed keys immutable, so sharing them is safe.
var publicKeys struct {
	sync.Mutex
	m map[string]hpke.PublicKey
}

// maxPublicKeys bounds publicKeys; when full it starts over.
const maxPublicKeys = 64

// parsePublicKey parses an encoded public key, from publicKeys if it was
// parsed before.
func parsePublicKey(b []byte) (hpke.PublicKey, error) {
	publicKeys.Lock()
	pk, ok := publicKeys.m[string(b)]
	publicKeys.Unlock()
	if ok {
		return pk, nil
	}
	pk, err := parsePublicKeyBytes(b)
	if err != nil {
		return nil, err
	}
	publicKeys.Lock()
	if publicKeys.m == nil || len(publicKeys.m) >= maxPublicKeys {
		publicKeys.m = make(map[string]hpke.PublicKey)
	}
	publicKeys.m[string(b)] = pk
	publicKeys.Unlock()
	return pk, nil
}

func parsePublicKeyBytes(b []byte) (hpke.PublicKey, error) {
	id, rest, err := splitKEM(b, "public key")
	if err != nil {
		return nil, err
	}
	k, err := kem(id)
	if err != nil {
		return nil, err
	}
	pk, err := k.NewPublicKey(rest)
	if err != nil {
		return nil, fmt.Errorf("seal: public key for KEM %#04x: %w: %w", id, ErrMalformed, err)
	}
	return pk, nil
}

func splitKEM(b []byte, what string) (uint16, []byte, error) {
	if len(b) < 2 {
		return 0, nil, fmt.Errorf("seal: %s of %d bytes: %w", what, len(b), ErrMalformed)
	}
	return binary.BigEndian.Uint16(b), b[2:], nil
}
