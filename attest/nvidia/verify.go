package nvidia

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cocoon-go/cocoon/attest"
)

// DefaultIssuer is the iss of tokens from NVIDIA's production NRAS.
const DefaultIssuer = "https://nras.attestation.nvidia.com"

// Kind is attest.GPUClaims.Kind for GPUs verified here.
const Kind = "nvidia-nras"

// Errors of the token steps. Each wraps attest.ErrGPU.
var (
	// ErrUnknownKey means a token names no kid, or one that is not pinned.
	ErrUnknownKey = fmt.Errorf("%w: NRAS token signed by a key that is not pinned", attest.ErrGPU)
	// ErrSignature means a token's signature does not verify, or its
	// algorithm is not ES384 (including "none").
	ErrSignature = fmt.Errorf("%w: bad NRAS token signature", attest.ErrGPU)
	// ErrTokenTime means a token is expired, not valid yet, issued in the
	// future, or has no expiry.
	ErrTokenTime = fmt.Errorf("%w: NRAS token outside its validity", attest.ErrGPU)
	// ErrIssuer means a token's iss is not the expected NRAS.
	ErrIssuer = fmt.Errorf("%w: NRAS token from another issuer", attest.ErrGPU)
	// ErrSubmods means the detached tokens are not exactly those whose
	// digests the overall token lists.
	ErrSubmods = fmt.Errorf("%w: detached NRAS tokens do not match the overall token", attest.ErrGPU)
	// ErrNonce means a token's eat_nonce is not the key bundle's hash: the
	// GPU evidence was made for another bundle.
	ErrNonce = fmt.Errorf("%w: NRAS nonce does not bind the key bundle", attest.ErrGPU)
	// ErrClaim matches every [*ClaimError].
	ErrClaim = fmt.Errorf("%w: GPU refused by its NRAS claims", attest.ErrGPU)
)

// ClaimError is a refusal by a claim of a verified token: the overall
// result, or a GPU that failed measurement, runs in debug mode, or failed
// one of NRAS's checks.
type ClaimError struct {
	GPU   string // the submodule name, e.g. "GPU-0"; empty for the overall token
	Claim string // the claim's name, e.g. "measres"
	Got   string // the claim's value as JSON, or "absent"
	Want  string // what would have passed
}

func (e *ClaimError) Error() string {
	who := "overall NRAS token"
	if e.GPU != "" {
		who = e.GPU
	}
	return fmt.Sprintf("%v: %s: %s is %s, want %s", ErrClaim, who, e.Claim, e.Got, e.Want)
}

// Is reports whether target is [ErrClaim] or attest.ErrGPU.
func (e *ClaimError) Is(target error) bool { return target == ErrClaim || target == attest.ErrGPU }

// Options are what token verification accepts besides the keys.
type Options struct {
	// Issuer is the required iss of every token; empty means DefaultIssuer.
	Issuer string
	// Leeway is the clock skew allowed when checking exp, nbf and iat.
	Leeway time.Duration
}

// DefaultOptions returns the options for NVIDIA's production NRAS, with a
// minute of clock skew.
func DefaultOptions() Options {
	return Options{Issuer: DefaultIssuer, Leeway: time.Minute}
}

// Tokens are the claims of evidence whose tokens [VerifyTokens] checked.
type Tokens struct {
	Overall map[string]any
	GPUs    []GPUToken // in the order of Evidence.GPUs (sorted by name)
	Expires time.Time  // the earliest exp of all tokens
}

// GPUToken is the claims of one verified detached token.
type GPUToken struct {
	Name   string
	Claims map[string]any
}

// VerifyTokens checks every token of e at now: signed with ES384 by a key
// of keys named by its kid, issued by opts.Issuer, within exp, nbf and iat;
// and that the overall token's submods list exactly the detached tokens,
// each by its SHA-256. It applies no policy.
func VerifyTokens(e *Evidence, keys *KeySet, opts Options, now time.Time) (*Tokens, error) {
	if keys == nil || len(keys.keys) == 0 {
		return nil, fmt.Errorf("%w: no NRAS keys pinned", ErrUnknownKey)
	}
	if opts.Issuer == "" {
		opts.Issuer = DefaultIssuer
	}
	overall, exp, err := verifyToken("overall token", e.Overall, keys, opts, now)
	if err != nil {
		return nil, err
	}
	t := &Tokens{Overall: overall, Expires: exp}
	for _, g := range e.GPUs {
		claims, exp, err := verifyToken("token of "+g.Name, g.Token, keys, opts, now)
		if err != nil {
			return nil, err
		}
		t.GPUs = append(t.GPUs, GPUToken{Name: g.Name, Claims: claims})
		if exp.Before(t.Expires) {
			t.Expires = exp
		}
	}
	if err := checkSubmods(overall, e.GPUs); err != nil {
		return nil, err
	}
	return t, nil
}

// verifyToken checks one token's signature and registered claims and
// returns its claims and expiry.
func verifyToken(what, raw string, keys *KeySet, opts Options, now time.Time) (map[string]any, time.Time, error) {
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodES384.Alg()}),
		jwt.WithIssuer(opts.Issuer),
		jwt.WithLeeway(opts.Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	claims := jwt.MapClaims{}
	var keyErr error
	_, err := p.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if k, ok := keys.keys[kid]; ok {
			return k, nil
		}
		keyErr = fmt.Errorf("%w: %s has kid %q", ErrUnknownKey, what, kid)
		return nil, keyErr
	})
	switch {
	case err == nil:
	case keyErr != nil:
		return nil, time.Time{}, keyErr
	case errors.Is(err, jwt.ErrTokenMalformed):
		return nil, time.Time{}, fmt.Errorf("%w: nvidia GPU evidence: %s: %v", attest.ErrMalformed, what, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return nil, time.Time{}, fmt.Errorf("%w: %s: %v", ErrSignature, what, err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		iss, _ := claims["iss"].(string)
		return nil, time.Time{}, fmt.Errorf("%w: %s has iss %q, want %q", ErrIssuer, what, iss, opts.Issuer)
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenNotValidYet),
		errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return nil, time.Time{}, fmt.Errorf("%w: %s at %s (%s): %v", ErrTokenTime, what, now.UTC().Format(time.RFC3339), window(claims), err)
	default:
		return nil, time.Time{}, fmt.Errorf("%w: %s: %v", ErrSignature, what, err)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil { // WithExpirationRequired makes this unreachable
		return nil, time.Time{}, fmt.Errorf("%w: %s has no exp", ErrTokenTime, what)
	}
	return claims, exp.Time, nil
}

// window describes a token's validity for an error message.
func window(c jwt.MapClaims) string {
	format := func(t *jwt.NumericDate, err error) string {
		if t == nil || err != nil {
			return "none"
		}
		return t.UTC().Format(time.RFC3339)
	}
	return "nbf " + format(c.GetNotBefore()) + ", exp " + format(c.GetExpirationTime())
}

// checkSubmods checks that the overall token's submods name exactly the
// detached tokens, each as ["DIGEST", ["SHA-256", hex of SHA-256 of the
// compact token]]: this is what ties the detached tokens to the overall
// verdict.
func checkSubmods(overall map[string]any, gpus []Detached) error {
	submods, ok := overall["submods"].(map[string]any)
	if !ok {
		return fmt.Errorf("%w: overall token has no submods object", ErrSubmods)
	}
	for _, g := range gpus {
		entry, ok := submods[g.Name]
		if !ok {
			return fmt.Errorf("%w: overall token lists no digest for %s", ErrSubmods, g.Name)
		}
		want, err := submodDigest(entry)
		if err != nil {
			return fmt.Errorf("%w: submods[%q]: %v", ErrSubmods, g.Name, err)
		}
		got := sha256.Sum256([]byte(g.Token))
		if !strings.EqualFold(want, hex.EncodeToString(got[:])) {
			return fmt.Errorf("%w: detached token of %s has SHA-256 %x, overall token lists %s", ErrSubmods, g.Name, got, want)
		}
	}
	if len(submods) != len(gpus) {
		for name := range submods {
			if !hasGPU(gpus, name) {
				return fmt.Errorf("%w: detached token of %s is missing", ErrSubmods, name)
			}
		}
	}
	return nil
}

func hasGPU(gpus []Detached, name string) bool {
	for _, g := range gpus {
		if g.Name == name {
			return true
		}
	}
	return false
}

// submodDigest returns the hex digest of a submods entry
// ["DIGEST", ["SHA-256", hex]].
func submodDigest(entry any) (string, error) {
	e, ok := entry.([]any)
	if !ok || len(e) != 2 || e[0] != "DIGEST" {
		return "", fmt.Errorf("not [\"DIGEST\", [alg, hex]]")
	}
	d, ok := e[1].([]any)
	if !ok || len(d) != 2 {
		return "", fmt.Errorf("not [\"DIGEST\", [alg, hex]]")
	}
	alg, _ := d[0].(string)
	hexDigest, _ := d[1].(string)
	if alg != "SHA-256" {
		return "", fmt.Errorf("digest algorithm %q, want SHA-256", d[0])
	}
	if b, err := hex.DecodeString(hexDigest); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("digest %q is not 64 hex digits", hexDigest)
	}
	return hexDigest, nil
}

// CheckNonce checks that every token's eat_nonce is nonce in hex: the
// evidence was made for the key bundle whose hash is nonce.
func CheckNonce(t *Tokens, nonce [32]byte) error {
	want := hex.EncodeToString(nonce[:])
	if err := checkNonce("overall token", t.Overall, want); err != nil {
		return err
	}
	for _, g := range t.GPUs {
		if err := checkNonce("token of "+g.Name, g.Claims, want); err != nil {
			return err
		}
	}
	return nil
}

func checkNonce(what string, claims map[string]any, want string) error {
	got, _ := claims["eat_nonce"].(string)
	if !strings.EqualFold(got, want) {
		return fmt.Errorf("%w: %s has eat_nonce %q, want %s", ErrNonce, what, got, want)
	}
	return nil
}

// requiredTrue are the per-GPU checks NRAS reports as booleans, every one of
// which must be present and true: NVIDIA's own appraisal policy for claims
// version 3.0 (nvtrust, attestation_sdk/tests/policies) requires these, and
// NRAS's claims version 2.0 carries them too.
var requiredTrue = []string{
	"x-nvidia-gpu-arch-check",
	"x-nvidia-gpu-attestation-report-parsed",
	"x-nvidia-gpu-attestation-report-nonce-match",
	"x-nvidia-gpu-attestation-report-signature-verified",
	"x-nvidia-gpu-driver-rim-fetched",
	"x-nvidia-gpu-driver-rim-schema-validated",
	"x-nvidia-gpu-driver-rim-signature-verified",
	"x-nvidia-gpu-driver-rim-measurements-available",
	"x-nvidia-gpu-vbios-rim-fetched",
	"x-nvidia-gpu-vbios-rim-schema-validated",
	"x-nvidia-gpu-vbios-rim-signature-verified",
	"x-nvidia-gpu-vbios-rim-measurements-available",
	"x-nvidia-gpu-vbios-index-no-conflict",
}

// certChains are the certificate chains NRAS checks for each GPU (the
// device's attestation key, and the signers of the driver and VBIOS RIMs):
// claims version 2.0 reports each as a boolean, 3.0 as an object with the
// chain's status and OCSP status.
var certChains = []struct{ v2, v3 string }{
	{"x-nvidia-gpu-attestation-report-cert-chain-validated", "x-nvidia-gpu-attestation-report-cert-chain"},
	{"x-nvidia-gpu-driver-rim-cert-validated", "x-nvidia-gpu-driver-rim-cert-chain"},
	{"x-nvidia-gpu-vbios-rim-cert-validated", "x-nvidia-gpu-vbios-rim-cert-chain"},
}

// debugDisabled are the EAT dbgstat values of a device whose debug
// interfaces are off.
var debugDisabled = []string{"disabled", "disabled-since-boot", "disabled-permanently", "disabled-fully-and-permanently"}

// CheckGPUs applies NRAS's verdict to verified tokens: the overall result
// must be true and every GPU must pass [CheckGPU]. It returns the GPUs.
func CheckGPUs(t *Tokens) ([]attest.GPU, error) {
	if v, ok := t.Overall["x-nvidia-overall-att-result"]; v != true {
		return nil, &ClaimError{Claim: "x-nvidia-overall-att-result", Got: jsonValue(v, ok), Want: "true"}
	}
	if len(t.GPUs) == 0 {
		return nil, fmt.Errorf("%w: no GPU tokens", ErrSubmods)
	}
	gpus := make([]attest.GPU, 0, len(t.GPUs))
	for _, g := range t.GPUs {
		if err := CheckGPU(g.Name, g.Claims); err != nil {
			return nil, err
		}
		gpus = append(gpus, gpuOf(g))
	}
	return gpus, nil
}

// CheckGPU applies the per-GPU rules to the claims of a verified detached
// token, refusing with a [*ClaimError] naming the GPU and the first claim
// that fails: measres must be "success" (the measurements match NVIDIA's
// reference values for its driver and VBIOS), dbgstat a "disabled" value,
// secboot true, every check in requiredTrue true, each certificate chain
// valid (OCSP "good" in claims version 3.0), any other boolean
// x-nvidia-gpu-* check true, and no x-nvidia-attestation-warning.
func CheckGPU(name string, c map[string]any) error {
	refuse := func(claim, want string) error {
		v, ok := c[claim]
		return &ClaimError{GPU: name, Claim: claim, Got: jsonValue(v, ok), Want: want}
	}
	if m, _ := c["measres"].(string); !strings.EqualFold(m, "success") {
		return refuse("measres", `"success"`)
	}
	if d, _ := c["dbgstat"].(string); !containsFold(debugDisabled, d) {
		return refuse("dbgstat", `"disabled"`)
	}
	if c["secboot"] != true {
		return refuse("secboot", "true")
	}
	for _, claim := range requiredTrue {
		if c[claim] != true {
			return refuse(claim, "true")
		}
	}
	for _, chain := range certChains {
		if v, ok := c[chain.v2]; ok { // claims version 2.0
			if v != true {
				return refuse(chain.v2, "true")
			}
			continue
		}
		obj, ok := c[chain.v3].(map[string]any)
		if !ok {
			return refuse(chain.v3, `{"x-nvidia-cert-status": "valid", "x-nvidia-cert-ocsp-status": "good"}`)
		}
		if s, _ := obj["x-nvidia-cert-status"].(string); s != "valid" {
			return refuse(chain.v3, `x-nvidia-cert-status "valid"`)
		}
		if s, _ := obj["x-nvidia-cert-ocsp-status"].(string); s != "good" {
			return refuse(chain.v3, `x-nvidia-cert-ocsp-status "good"`)
		}
	}
	for claim, v := range c {
		if strings.HasPrefix(claim, "x-nvidia-gpu-") && v == false {
			return refuse(claim, "true")
		}
	}
	if w, ok := c["x-nvidia-attestation-warning"]; ok && w != nil && w != "" {
		return refuse("x-nvidia-attestation-warning", "null")
	}
	return nil
}

// gpuOf describes a GPU that passed CheckGPU.
func gpuOf(g GPUToken) attest.GPU {
	str := func(k string) string { s, _ := g.Claims[k].(string); return s }
	id := str("ueid")
	if id == "" {
		id = g.Name
	}
	model := str("hwmodel")
	return attest.GPU{
		ID:     id,
		Model:  model,
		Arch:   archOf(model),
		Driver: str("x-nvidia-gpu-driver-version"),
		VBIOS:  str("x-nvidia-gpu-vbios-version"),
	}
}

// archOf names the architecture of an NVIDIA chip by its hwmodel ("GH100
// A01 GSP BROM" is a Hopper), or "" if it is not one this package knows.
func archOf(hwmodel string) string {
	switch {
	case strings.HasPrefix(hwmodel, "GH"):
		return "HOPPER"
	case strings.HasPrefix(hwmodel, "GB"):
		return "BLACKWELL"
	}
	return ""
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// jsonValue renders a claim's value for an error message.
func jsonValue(v any, present bool) string {
	if !present {
		return "absent"
	}
	b, err := json.Marshal(v)
	if err != nil || len(b) > 200 {
		return fmt.Sprintf("%.200v", v)
	}
	return string(b)
}

// Verifier checks NVIDIA GPU evidence as an attest.GPUVerifier: the tokens
// NRAS returned, against pinned NRAS keys, without network access.
type Verifier struct {
	Keys    *KeySet
	Options Options
}

var _ attest.GPUVerifier = (*Verifier)(nil)

// NewVerifier returns a verifier trusting keys with DefaultOptions.
func NewVerifier(keys *KeySet) *Verifier {
	return &Verifier{Keys: keys, Options: DefaultOptions()}
}

// VerifyGPU runs every step on gpu, attest.Evidence.GPU bytes: ParseEvidence,
// VerifyTokens, CheckNonce with bundleHash, CheckGPUs. The claims it returns
// hold until the earliest token expiry.
func (v *Verifier) VerifyGPU(gpu []byte, bundleHash [32]byte, now time.Time) (*attest.GPUClaims, error) {
	e, err := ParseEvidence(gpu)
	if err != nil {
		return nil, err
	}
	t, err := VerifyTokens(e, v.Keys, v.Options, now)
	if err != nil {
		return nil, err
	}
	if err := CheckNonce(t, bundleHash); err != nil {
		return nil, err
	}
	gpus, err := CheckGPUs(t)
	if err != nil {
		return nil, err
	}
	return &attest.GPUClaims{Kind: Kind, GPUs: gpus, ValidUntil: t.Expires}, nil
}
