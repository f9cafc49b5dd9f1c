package nvidia_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/nvidia"
	"github.com/cocoon-go/cocoon/attest/nvidia/nvidiatest"
)

// testNow is the pinned clock of these tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// atTestNow dates the doubles' tokens at testNow.
var atTestNow = nvidiatest.WithClock(func() time.Time { return testNow })

var testNonce = [32]byte{0xc0, 0xc0, 31: 0x01}

// sentinels are the errors of the verifier's steps; a refusal must match
// its own and no other.
var sentinels = []error{
	attest.ErrMalformed, nvidia.ErrUnknownKey, nvidia.ErrSignature, nvidia.ErrTokenTime,
	nvidia.ErrIssuer, nvidia.ErrSubmods, nvidia.ErrNonce, nvidia.ErrClaim,
}

func wantOnly(t *testing.T, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want %v", want)
	}
	if want != attest.ErrMalformed && !errors.Is(err, attest.ErrGPU) {
		t.Errorf("%v does not wrap attest.ErrGPU", err)
	}
	for _, s := range sentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
		}
	}
}

func wantClaim(t *testing.T, err error, gpu, claim string) {
	t.Helper()
	wantOnly(t, err, nvidia.ErrClaim)
	var ce *nvidia.ClaimError
	if !errors.As(err, &ce) || ce.GPU != gpu || ce.Claim != claim {
		t.Errorf("err = %v, want a ClaimError for %q claim %q", err, gpu, claim)
	}
	if gpu != "" && !strings.Contains(err.Error(), gpu) || !strings.Contains(err.Error(), claim) {
		t.Errorf("error %q does not name the GPU and the claim", err)
	}
}

func verify(s *nvidiatest.Signer, e *nvidia.Evidence, now time.Time) (*attest.GPUClaims, error) {
	return nvidia.NewVerifier(s.Keys()).VerifyGPU(e.Marshal(), testNonce, now)
}

func TestVerifyGood(t *testing.T) {
	s := nvidiatest.NewSigner("k1", atTestNow)
	e := s.Evidence(testNonce, 2, nvidiatest.Edits{})
	g, err := verify(s, e, testNow.Add(30*time.Minute))
	if err != nil {
		t.Fatalf("VerifyGPU: %v", err)
	}
	if g.Kind != nvidia.Kind || len(g.GPUs) != 2 || !g.ValidUntil.Equal(testNow.Add(nvidiatest.TokenLife)) {
		t.Fatalf("claims = %+v", g)
	}
	want := attest.GPU{ID: "642960189298007512", Model: "GH100 A01 GSP BROM", Arch: "HOPPER", Driver: "570.133.20", VBIOS: "96.00.CF.00.02"}
	if g.GPUs[1] != want {
		t.Errorf("GPU-1 = %+v, want %+v", g.GPUs[1], want)
	}
}

// TestVerifyClaimsV3 accepts NRAS's claims version 3.0, which reports each
// certificate chain as an object, and refuses a revoked one.
func TestVerifyClaimsV3(t *testing.T) {
	s := nvidiatest.NewSigner("k1", atTestNow)
	v3 := func(ocsp string) func(string, jwt.MapClaims) {
		return func(_ string, c jwt.MapClaims) {
			for _, p := range []string{"attestation-report-cert-chain", "driver-rim-cert", "vbios-rim-cert"} {
				v2 := "x-nvidia-gpu-" + p + "-validated"
				delete(c, v2)
			}
			for _, p := range []string{"attestation-report", "driver-rim", "vbios-rim"} {
				c["x-nvidia-gpu-"+p+"-cert-chain"] = map[string]any{
					"x-nvidia-cert-status": "valid", "x-nvidia-cert-ocsp-status": ocsp,
					"x-nvidia-cert-expiration-date": "2027-01-01T00:00:00",
				}
			}
			c["x-nvidia-gpu-attestation-report-cert-chain-fwid-match"] = true
		}
	}
	if _, err := verify(s, s.Evidence(testNonce, 1, nvidiatest.Edits{GPU: v3("good")}), testNow); err != nil {
		t.Fatalf("claims 3.0: %v", err)
	}
	_, err := verify(s, s.Evidence(testNonce, 1, nvidiatest.Edits{GPU: v3("revoked")}), testNow)
	wantClaim(t, err, "GPU-0", "x-nvidia-gpu-attestation-report-cert-chain")
}

func TestVerifyRefusesBadSignature(t *testing.T) {
	s := nvidiatest.NewSigner("k1", atTestNow)
	e := s.Evidence(testNonce, 1, nvidiatest.Edits{})

	// Same kid, another key.
	other := nvidiatest.NewSigner("k1", atTestNow)
	e2 := other.Evidence(testNonce, 1, nvidiatest.Edits{})
	_, err := verify(s, e2, testNow)
	wantOnly(t, err, nvidia.ErrSignature)

	// A payload changed under a good signature.
	parts := strings.Split(e.Overall, ".")
	forged := s.OverallClaims(hex.EncodeToString(testNonce[:]), map[string]string{"GPU-0": e.GPUs[0].Token})
	forged["jti"] = "forged"
	parts[1] = strings.Split(s.Sign(forged), ".")[1]
	e.Overall = strings.Join(parts, ".")
	_, err = verify(s, e, testNow)
	wantOnly(t, err, nvidia.ErrSignature)
}

func TestVerifyRefusesUnknownKid(t *testing.T) {
	s := nvidiatest.NewSigner("k1", atTestNow)
	other := nvidiatest.NewSigner("k2", atTestNow)
	_, err := verify(s, other.Evidence(testNonce, 1, nvidiatest.Edits{}), testNow)
	wantOnly(t, err, nvidia.ErrUnknownKey)
	if !strings.Contains(err.Error(), `"k2"`) {
		t.Errorf("error %q does not name the kid", err)
	}
}

// TestVerifyRefusesOtherAlgorithms refuses tokens that are not ES384,
// including the classic confusions: none, and HMAC keyed with the public key.
func TestVerifyRefusesOtherAlgorithms(t *testing.T) {
	s := nvidiatest.NewSigner("k1", atTestNow)
	e := s.Evidence(testNonce, 1, nvidiatest.Edits{})
	claims := s.OverallClaims(hex.EncodeToString(testNonce[:]), map[string]string{"GPU-0": e.GPUs[0].Token})
	pub, _ := s.Key.PublicKey.Bytes()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, sign := range map[string]func() (string, error){
		"none": func() (string, error) {
			tok := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
			tok.Header["kid"] = "k1"
			return tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		},
		"HS384": func() (string, error) {
			tok := jwt.NewWithClaims(jwt.SigningMethodHS384, claims)
			tok.Header["kid"] = "k1"
			return tok.SignedString(pub)
		},
		"RS256": func() (string, error) {
			tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
			tok.Header["kid"] = "k1"
			return tok.SignedString(rsaKey)
		},
	} {
		t.Run(name, func(t *testing.T) {
			raw, err := sign()
			if err != nil {
				t.Fatal(err)
			}
			bad := *e
			bad.Overall = raw
			_, err = verify(s, &bad, testNow)
			wantOnly(t, err, nvidia.ErrSignature)
		})
	}
}

func TestVerifyRefusesOutsideValidity(t *testing.T) {
	s := nvidiatest.NewSigner("k1", atTestNow)
	e := s.Evidence(testNonce, 1, nvidiatest.Edits{})
	for name, now := range map[string]time.Time{
		"expired":       testNow.Add(nvidiatest.TokenLife + 2*time.Minute),
		"not yet valid": testNow.Add(-2 * time.Minute),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := verify(s, e, now)
			wantOnly(t, err, nvidia.ErrTokenTime)
		})
	}
	// Within the leeway of a minute either way, it verifies.
	for _, now := range []time.Time{testNow.Add(-30 * time.Second), testNow.Add(nvidiatest.TokenLife + 30*time.Second)} {
		if _, err := verify(s, e, now); err != nil {
			t.Errorf("at %v: %v", now, err)
		}
	}
	// A token without exp never verifies.
	noExp := s.Evidence(testNonce, 1, nvidiatest.Edits{GPU: func(_ string, c jwt.MapClaims) { delete(c, "exp") }})
	_, err := verify(s, noExp, testNow)
	wantOnly(t, err, nvidia.ErrTokenTime)
}

func TestVerifyIssuer(t *testing.T) {
	stg := nvidiatest.NewSigner("k1", atTestNow)
	stg.Issuer = "https://nras.attestation-stg.nvidia.com"
	e := stg.Evidence(testNonce, 1, nvidiatest.Edits{})
	_, err := verify(stg, e, testNow)
	wantOnly(t, err, nvidia.ErrIssuer)

	// The issuer is configurable.
	v := nvidia.NewVerifier(stg.Keys())
	v.Options.Issuer = stg.Issuer
	if _, err := v.VerifyGPU(e.Marshal(), testNonce, testNow); err != nil {
		t.Errorf("with Issuer %q: %v", stg.Issuer, err)
	}
}

func TestVerifyRefusesWrongNonce(t *testing.T) {
	s := nvidiatest.NewSigner("k1", atTestNow)
	other := testNonce
	other[0] ^= 1
	_, err := verify(s, s.Evidence(other, 1, nvidiatest.Edits{}), testNow)
	wantOnly(t, err, nvidia.ErrNonce)

	// Only a detached token with another nonce.
	e := s.Evidence(testNonce, 2, nvidiatest.Edits{GPU: func(name string, c jwt.MapClaims) {
		if name == "GPU-1" {
			c["eat_nonce"] = hex.EncodeToString(other[:])
		}
	}})
	_, err = verify(s, e, testNow)
	wantOnly(t, err, nvidia.ErrNonce)
}

func TestVerifyRefusesOverallResultFalse(t *testing.T) {
	s := nvidiatest.NewSigner("k1", atTestNow)
	e := s.Evidence(testNonce, 1, nvidiatest.Edits{Overall: func(c jwt.MapClaims) { c["x-nvidia-overall-att-result"] = false }})
	_, err := verify(s, e, testNow)
	wantClaim(t, err, "", "x-nvidia-overall-att-result")
}

func TestVerifyRefusesFailingGPU(t *testing.T) {
	for _, tc := range []struct {
		claim string
		value any
	}{
		{"measres", "fail"},
		{"dbgstat", "enabled"},
		{"secboot", false},
		{"x-nvidia-gpu-arch-check", false},
		{"x-nvidia-gpu-attestation-report-signature-verified", false},
		{"x-nvidia-gpu-attestation-report-nonce-match", nil},
		{"x-nvidia-gpu-attestation-report-cert-chain-validated", false},
		{"x-nvidia-gpu-some-future-check", false},
		{"x-nvidia-attestation-warning", "certificate on hold"},
	} {
		t.Run(tc.claim, func(t *testing.T) {
			s := nvidiatest.NewSigner("k1", atTestNow)
			e := s.Evidence(testNonce, 3, nvidiatest.Edits{GPU: func(name string, c jwt.MapClaims) {
				if name == "GPU-2" {
					c[tc.claim] = tc.value
				}
			}})
			_, err := verify(s, e, testNow)
			wantClaim(t, err, "GPU-2", tc.claim)
		})
	}
	// A claim that is absent fails as well.
	s := nvidiatest.NewSigner("k1", atTestNow)
	e := s.Evidence(testNonce, 1, nvidiatest.Edits{GPU: func(_ string, c jwt.MapClaims) { delete(c, "measres") }})
	_, err := verify(s, e, testNow)
	wantClaim(t, err, "GPU-0", "measres")
}

func TestVerifyRefusesSubmodsMismatch(t *testing.T) {
	s := nvidiatest.NewSigner("k1", atTestNow)
	good := s.Evidence(testNonce, 2, nvidiatest.Edits{})
	other := s.Evidence(testNonce, 2, nvidiatest.Edits{})

	swapped := *good // a detached token from another (valid) set
	swapped.GPUs = []nvidia.Detached{good.GPUs[0], other.GPUs[1]}
	_, err := verify(s, &swapped, testNow)
	wantOnly(t, err, nvidia.ErrSubmods)

	missing := *good
	missing.GPUs = good.GPUs[:1]
	_, err = verify(s, &missing, testNow)
	wantOnly(t, err, nvidia.ErrSubmods)
	if !strings.Contains(err.Error(), "GPU-1") || !strings.Contains(err.Error(), "missing") {
		t.Errorf("error %q does not say GPU-1 is missing", err)
	}

	extra := *good
	extra.GPUs = append(extra.GPUs, nvidia.Detached{Name: "GPU-9", Token: other.GPUs[0].Token})
	_, err = verify(s, &extra, testNow)
	wantOnly(t, err, nvidia.ErrSubmods)

	badDigest := s.Evidence(testNonce, 1, nvidiatest.Edits{Overall: func(c jwt.MapClaims) {
		c["submods"] = map[string]any{"GPU-0": []any{"DIGEST", []any{"SHA-384", strings.Repeat("00", 48)}}}
	}})
	_, err = verify(s, badDigest, testNow)
	wantOnly(t, err, nvidia.ErrSubmods)
}

func TestVerifyRefusesMalformed(t *testing.T) {
	s := nvidiatest.NewSigner("k1", atTestNow)
	v := nvidia.NewVerifier(s.Keys())
	_, err := v.VerifyGPU([]byte("not evidence"), testNonce, testNow)
	wantOnly(t, err, attest.ErrMalformed)

	e := s.Evidence(testNonce, 1, nvidiatest.Edits{})
	e.Overall = "abc.def"
	_, err = v.VerifyGPU(e.Marshal(), testNonce, testNow)
	wantOnly(t, err, attest.ErrMalformed)
}

func TestVerifyWithoutKeys(t *testing.T) {
	s := nvidiatest.NewSigner("k1", atTestNow)
	v := &nvidia.Verifier{}
	_, err := v.VerifyGPU(s.Evidence(testNonce, 1, nvidiatest.Edits{}).Marshal(), testNonce, testNow)
	wantOnly(t, err, nvidia.ErrUnknownKey)
}
