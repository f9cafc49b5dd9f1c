package nvidia

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/cocoon-go/cocoon/attest"
)

// KeySet is a pinned set of NRAS token-signing keys, by key ID (kid).
type KeySet struct {
	keys map[string]*ecdsa.PublicKey
}

// jwk is the part of a JSON Web Key that NRAS's JWKS uses: every key is
// {"kty":"EC","crv":"P-384","kid":…,"x":…,"y":…,"x5c":[leaf, …]}.
type jwk struct {
	Kty string   `json:"kty"`
	Crv string   `json:"crv"`
	Kid string   `json:"kid"`
	Alg string   `json:"alg"`
	Use string   `json:"use"`
	X   string   `json:"x"`
	Y   string   `json:"y"`
	X5c []string `json:"x5c"`
}

// ParseJWKS reads a JSON Web Key Set such as the body of NRAS's
// /.well-known/jwks.json. Only EC P-384 keys are kept (tokens are signed
// with ES384); other keys are ignored. A key gives its point as x and y, or
// as the public key of its first x5c certificate, or both, which must then
// agree; its certificates are not checked further (the keys are pinned).
// A kid may appear once. A set without any usable key is refused with
// attest.ErrNoRoots.
func ParseJWKS(data []byte) (*KeySet, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("%w: NRAS JWKS: %w", attest.ErrMalformed, err)
	}
	ks := &KeySet{keys: make(map[string]*ecdsa.PublicKey)}
	for i, k := range set.Keys {
		if k.Kty != "EC" || k.Crv != "P-384" {
			continue
		}
		pub, err := k.publicKey()
		if err != nil {
			return nil, fmt.Errorf("%w: NRAS JWKS key %d (kid %q): %v", attest.ErrMalformed, i, k.Kid, err)
		}
		if _, dup := ks.keys[k.Kid]; dup {
			return nil, fmt.Errorf("%w: NRAS JWKS: kid %q appears twice", attest.ErrMalformed, k.Kid)
		}
		ks.keys[k.Kid] = pub
	}
	if len(ks.keys) == 0 {
		return nil, fmt.Errorf("%w: NRAS JWKS has no EC P-384 key", attest.ErrNoRoots)
	}
	return ks, nil
}

// LoadJWKS reads a pinned NRAS JWKS from a file (see [ParseJWKS]).
func LoadJWKS(file string) (*KeySet, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("nvidia: load NRAS keys: %w", err)
	}
	ks, err := ParseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("nvidia: NRAS keys in %s: %w", file, err)
	}
	return ks, nil
}

// Kids returns the key IDs in the set, sorted.
func (ks *KeySet) Kids() []string {
	kids := make([]string, 0, len(ks.keys))
	for kid := range ks.keys {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	return kids
}

func (k *jwk) publicKey() (*ecdsa.PublicKey, error) {
	if k.Kid == "" {
		return nil, fmt.Errorf("no kid")
	}
	if k.Alg != "" && k.Alg != "ES384" {
		return nil, fmt.Errorf("alg %q, want ES384", k.Alg)
	}
	if k.Use != "" && k.Use != "sig" {
		return nil, fmt.Errorf("use %q, want sig", k.Use)
	}
	var fromXY, fromCert *ecdsa.PublicKey
	if k.X != "" || k.Y != "" {
		x, errX := base64.RawURLEncoding.DecodeString(k.X)
		y, errY := base64.RawURLEncoding.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 48 || len(y) != 48 {
			return nil, fmt.Errorf("x and y must be 48 bytes each, base64url")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P384(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, err
		}
		fromXY = pub
	}
	if len(k.X5c) > 0 {
		der, err := base64.StdEncoding.DecodeString(k.X5c[0])
		if err != nil {
			return nil, fmt.Errorf("x5c[0]: %w", err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("x5c[0]: %w", err)
		}
		pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P384() {
			return nil, fmt.Errorf("x5c[0] holds no EC P-384 key")
		}
		fromCert = pub
	}
	switch {
	case fromXY != nil && fromCert != nil && !fromXY.Equal(fromCert):
		return nil, fmt.Errorf("x5c[0] key differs from x, y")
	case fromXY != nil:
		return fromXY, nil
	case fromCert != nil:
		return fromCert, nil
	}
	return nil, fmt.Errorf("neither x, y nor x5c")
}
