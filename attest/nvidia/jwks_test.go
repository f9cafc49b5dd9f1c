package nvidia_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/nvidia"
	"github.com/cocoon-go/cocoon/attest/nvidia/nvidiatest"
)

// jwksKeys returns the keys of the signer's JWKS, to edit.
func jwksKeys(s *nvidiatest.Signer) []map[string]any {
	var set struct{ Keys []map[string]any }
	if err := json.Unmarshal(s.JWKS(), &set); err != nil {
		panic(err)
	}
	return set.Keys
}

func marshalJWKS(keys ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

func TestParseJWKS(t *testing.T) {
	a, b := nvidiatest.NewSigner("a", atTestNow), nvidiatest.NewSigner("b", atTestNow)
	ka, kb := jwksKeys(a)[0], jwksKeys(b)[0]
	rsaKey := map[string]any{"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB"}
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pt, _ := p256.PublicKey.Bytes()
	b64 := base64.RawURLEncoding.EncodeToString
	p256Key := map[string]any{"kty": "EC", "crv": "P-256", "kid": "p", "x": b64(pt[1:33]), "y": b64(pt[33:])}

	// Only EC P-384 keys are kept; x5c alone is enough.
	certOnly := map[string]any{"kty": "EC", "crv": "P-384", "kid": "c", "x5c": kb["x5c"]}
	ks, err := nvidia.ParseJWKS(marshalJWKS(ka, rsaKey, p256Key, certOnly))
	if err != nil {
		t.Fatalf("ParseJWKS: %v", err)
	}
	if got := ks.Kids(); !reflect.DeepEqual(got, []string{"a", "c"}) {
		t.Errorf("Kids = %v", got)
	}

	with := func(k map[string]any, key string, v any) map[string]any {
		c := map[string]any{}
		for k, v := range k {
			c[k] = v
		}
		c[key] = v
		return c
	}
	for name, data := range map[string][]byte{
		"not json":           []byte("{"),
		"x5c of other key":   marshalJWKS(with(ka, "x5c", kb["x5c"])),
		"duplicate kid":      marshalJWKS(ka, with(kb, "kid", "a")),
		"no kid":             marshalJWKS(with(ka, "kid", "")),
		"alg RS256":          marshalJWKS(with(ka, "alg", "RS256")),
		"use enc":            marshalJWKS(with(ka, "use", "enc")),
		"short x":            marshalJWKS(with(ka, "x", "AAAA")),
		"point not on curve": marshalJWKS(with(ka, "y", kb["y"])),
		"bad x5c":            marshalJWKS(with(with(ka, "x", ""), "x5c", []string{"AAAA"})),
	} {
		if _, err := nvidia.ParseJWKS(data); !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("%s: ParseJWKS = %v, want ErrMalformed", name, err)
		}
	}
	for name, data := range map[string][]byte{
		"empty":      []byte(`{"keys":[]}`),
		"only other": marshalJWKS(rsaKey, p256Key),
	} {
		if _, err := nvidia.ParseJWKS(data); !errors.Is(err, attest.ErrNoRoots) {
			t.Errorf("%s: ParseJWKS = %v, want ErrNoRoots", name, err)
		}
	}
}

func TestLoadJWKS(t *testing.T) {
	s := nvidiatest.NewSigner("k1", atTestNow)
	file := filepath.Join(t.TempDir(), "nras-jwks.json")
	if err := os.WriteFile(file, s.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := nvidia.LoadJWKS(file)
	if err != nil {
		t.Fatalf("LoadJWKS: %v", err)
	}
	if _, err := nvidia.NewVerifier(keys).VerifyGPU(s.Evidence(testNonce, 1, nvidiatest.Edits{}).Marshal(), testNonce, testNow); err != nil {
		t.Errorf("VerifyGPU with loaded keys: %v", err)
	}
	if _, err := nvidia.LoadJWKS(file + ".missing"); err == nil {
		t.Error("LoadJWKS of a missing file: no error")
	}
}
