package attest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cocoon-go/cocoon/internal/binenc"
)

// Limits on a key bundle. An HPKE public key is a KEM id and the KEM's
// public key: 32 bytes for X25519, 1,216 for ML-KEM-768+X25519.
const (
	MaxBundleSize  = 32 << 10 // bytes of a marshaled bundle
	maxHPKEKey     = 4096
	maxModels      = 64
	maxModelName   = 256
	modelHashChars = 64 // hex SHA-256
)

// bundleMagic and bundleVersion start every marshaled bundle.
const (
	bundleMagic   = "CCNB"
	bundleVersion = 2 // 2 added the runtime configuration and upstream model names
)

// Model is one model a worker serves.
type Model struct {
	Name string // the name apps use, e.g. "Qwen/Qwen3-8B"
	Hash string // lowercase hex SHA-256 of the weights; empty where unknown (no allow-list accepts it)
	// Upstream is the engine's name for the model, where it differs from
	// Name; part of the runtime configuration ([Bundle.ConfigDigest]).
	Upstream string
}

// Bundle is a worker's identity: the public keys a client seals to and
// checks receipts with, and what the worker serves, for a bounded time.
// Its hash ([Bundle.Hash]) is bound into the TEE report.
type Bundle struct {
	HPKEKey    []byte            // encoded HPKE public key (KEM id ‖ key, from package seal); opaque here
	SigningKey ed25519.PublicKey // signs usage receipts
	TLSKeyHash [32]byte          // SHA-256 of the worker's TLS SubjectPublicKeyInfo; zero if none
	Models     []Model
	Created    int64 // unix seconds
	Expires    int64 // unix seconds; the bundle is valid while Created <= now < Expires
	// Config is, with Models, what decides where the worker's plaintext
	// goes and what it charges: its runtime configuration.
	Config RuntimeConfig
}

// Marshal returns the canonical encoding of b: models sorted by name, every
// field in a fixed order, so equal bundles have equal bytes and equal hashes.
// Call [Bundle.Validate] first: Marshal encodes whatever it is given, and
// [ParseBundle] refuses bundles that do not validate.
//
// Layout (version 2): "CCNB" 0x02, HPKE key (uint32 length ‖ bytes), signing
// key (uint32 length ‖ bytes), TLS key hash (32 bytes), created and expires
// (int64), then the runtime configuration, the bytes [Bundle.ConfigDigest]
// hashes: engine endpoint (uint32 length ‖ bytes), KEM (uint16), price per
// token and prompt, cached and completion multipliers (uint64 each), model
// count (uint16), then per model its name, hash and upstream name (each
// uint32 length ‖ bytes). Integers are big-endian.
func (b *Bundle) Marshal() []byte {
	w := binenc.AppendMagic(nil, bundleMagic, bundleVersion)
	w = binenc.AppendBytes(w, b.HPKEKey)
	w = binenc.AppendBytes(w, b.SigningKey)
	w = append(w, b.TLSKeyHash[:]...)
	w = binenc.AppendU64(w, uint64(b.Created))
	w = binenc.AppendU64(w, uint64(b.Expires))
	return b.appendConfig(w)
}

func sortedModels(ms []Model) []Model {
	ms = slices.Clone(ms)
	slices.SortStableFunc(ms, func(a, b Model) int { return strings.Compare(a.Name, b.Name) })
	return ms
}

// Hash returns the SHA-256 of b's canonical encoding: the worker's key ID.
func (b *Bundle) Hash() [32]byte { return sha256.Sum256(b.Marshal()) }

// Validate reports whether b can be published: keys of the right sizes,
// 0 < Created < Expires, at most 64 models with distinct, printable names,
// hashes that are empty or 64 lowercase hex digits and printable ASCII
// upstream names, and a valid runtime configuration ([RuntimeConfig.Validate])
// whose KEM is that of the HPKE key.
func (b *Bundle) Validate() error {
	switch {
	case len(b.HPKEKey) == 0 || len(b.HPKEKey) > maxHPKEKey:
		return malformed("bundle: HPKE key of %d bytes (want 1 to %d)", len(b.HPKEKey), maxHPKEKey)
	case len(b.SigningKey) != ed25519.PublicKeySize:
		return malformed("bundle: signing key of %d bytes (want %d)", len(b.SigningKey), ed25519.PublicKeySize)
	case b.Created <= 0 || b.Expires <= b.Created:
		return malformed("bundle: validity [%d, %d) is empty or before 1970", b.Created, b.Expires)
	case len(b.Models) > maxModels:
		return malformed("bundle: %d models (at most %d)", len(b.Models), maxModels)
	}
	models := sortedModels(b.Models)
	for i, m := range models {
		if err := validateModel(m); err != nil {
			return err
		}
		if i > 0 && models[i-1].Name == m.Name {
			return malformed("bundle: model %q listed twice", m.Name)
		}
	}
	if err := b.Config.Validate(); err != nil {
		return err
	}
	// The HPKE key starts with its KEM id (package seal's encoding).
	if len(b.HPKEKey) < 2 || binary.BigEndian.Uint16(b.HPKEKey) != b.Config.KEM {
		return malformed("bundle: config names KEM %#04x, the HPKE key %x… is not for it", b.Config.KEM, b.HPKEKey[:min(2, len(b.HPKEKey))])
	}
	return nil
}

func validateModel(m Model) error {
	if m.Name == "" || len(m.Name) > maxModelName || !utf8.ValidString(m.Name) ||
		strings.ContainsFunc(m.Name, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return malformed("bundle: model name %q: want 1 to %d printable UTF-8 bytes", m.Name, maxModelName)
	}
	if m.Hash != "" && !isLowerHex(m.Hash, modelHashChars) {
		return malformed("bundle: model %q: hash %q is not %d lowercase hex digits", m.Name, m.Hash, modelHashChars)
	}
	if len(m.Upstream) > maxUpstream || !printableASCII(m.Upstream) {
		return malformed("bundle: model %q: upstream name %q: want at most %d printable ASCII bytes", m.Name, m.Upstream, maxUpstream)
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ParseBundle decodes a bundle encoded by [Bundle.Marshal]. It accepts only
// the canonical encoding of a bundle that passes [Bundle.Validate], so the
// hash of the input is the hash of the result.
func ParseBundle(p []byte) (*Bundle, error) {
	if len(p) > MaxBundleSize {
		return nil, malformed("bundle: %d bytes (at most %d)", len(p), MaxBundleSize)
	}
	r := binenc.NewDecoder(p)
	r.Magic(bundleMagic, bundleVersion)
	b := &Bundle{
		HPKEKey:    r.Bytes("HPKE key", 1, maxHPKEKey),
		SigningKey: r.Bytes("signing key", ed25519.PublicKeySize, ed25519.PublicKeySize),
	}
	r.Fixed("TLS key hash", b.TLSKeyHash[:])
	b.Created = int64(r.U64("created"))
	b.Expires = int64(r.U64("expires"))
	b.parseConfig(r)
	if err := r.Finish(); err != nil {
		return nil, malformed("bundle: %v", err)
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	// Fields are fixed, so the only other freedom is model order.
	if !bytes.Equal(b.Marshal(), p) {
		return nil, malformed("bundle: not in canonical form (models must be sorted by name)")
	}
	return b, nil
}

// CheckValidity returns an error wrapping [ErrExpired] unless b is valid at
// now (Created <= now+MaxClockSkew and now < Expires).
func (b *Bundle) CheckValidity(now time.Time) error {
	t := now.Unix()
	if t >= b.Expires {
		return fmt.Errorf("%w: key bundle %x expired at %s", ErrExpired, shortID(b.Hash()), time.Unix(b.Expires, 0).UTC().Format(time.RFC3339))
	}
	if time.Unix(b.Created, 0).After(now.Add(MaxClockSkew)) {
		return fmt.Errorf("%w: key bundle %x not valid until %s", ErrExpired, shortID(b.Hash()), time.Unix(b.Created, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

// ReportDataDomain separates the report_data of a Cocoon key bundle from
// anything else a TEE might be asked to sign.
const ReportDataDomain = "cocoon attest report_data v1\x00"

// ReportData returns what a TEE report must carry in its 64-byte
// report_data field to bind the bundle with the given hash:
// SHA-512(ReportDataDomain ‖ bundleHash).
func ReportData(bundleHash [32]byte) [64]byte {
	h := sha512.New()
	h.Write([]byte(ReportDataDomain))
	h.Write(bundleHash[:])
	var out [64]byte
	h.Sum(out[:0])
	return out
}

// ReportDataWithGPU returns what a TEE report must carry to bind both the
// bundle with the given hash and the GPU evidence that comes with it:
// SHA-512(ReportDataDomain ‖ bundleHash ‖ SHA-256(gpu)). Without GPU
// evidence (gpu empty) it is ReportData(bundleHash). Binding the GPU
// evidence into the CPU report keeps anyone who relays the evidence from
// splicing in another GPU's verdict for the same (public) bundle hash.
func ReportDataWithGPU(bundleHash [32]byte, gpu []byte) [64]byte {
	if len(gpu) == 0 {
		return ReportData(bundleHash)
	}
	g := sha256.Sum256(gpu)
	h := sha512.New()
	h.Write([]byte(ReportDataDomain))
	h.Write(bundleHash[:])
	h.Write(g[:])
	var out [64]byte
	h.Sum(out[:0])
	return out
}

// shortID is the prefix of a key ID printed in errors and logs.
func shortID(id [32]byte) []byte { return id[:8] }
