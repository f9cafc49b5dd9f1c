package attest

import (
	"crypto/sha256"
	"fmt"
	"time"
)

// Verified is a key bundle whose evidence passed every check.
type Verified struct {
	Bundle       *Bundle
	KeyID        [32]byte // Bundle.Hash(): the worker's key ID
	ConfigDigest [32]byte // Bundle.ConfigDigest(): the worker's runtime configuration
	Claims       *Claims
	Expires      time.Time // when this result stops holding: the earliest of bundle expiry, report age limit, evidence expiry
}

// Checker runs every step of checking evidence: parse, verify by kind,
// binding of the bundle, policy, bundle validity. Only kinds with a verifier
// in Verifiers are accepted; there is no default trust.
type Checker struct {
	Verifiers []Verifier       // for each kind, tried in order until one verifies (e.g. one per trusted root)
	GPU       GPUVerifier      // verifies Evidence.GPU when present; nil ignores GPU evidence
	Policy    Policy           // applied to every verified report
	Now       func() time.Time // clock; nil means time.Now
}

// NewChecker returns a checker applying policy to evidence of the kinds
// verifiers know.
func NewChecker(policy Policy, verifiers ...Verifier) *Checker {
	return &Checker{Verifiers: verifiers, Policy: policy}
}

func (c *Checker) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Check checks marshaled evidence and returns the verified bundle, or an
// error that wraps the sentinel of the step that refused it.
func (c *Checker) Check(evidence []byte) (*Verified, error) {
	return c.check(evidence, c.now())
}

func (c *Checker) check(evidence []byte, now time.Time) (*Verified, error) {
	e, err := ParseEvidence(evidence)
	if err != nil {
		return nil, err
	}
	b, err := ParseBundle(e.Bundle)
	if err != nil {
		return nil, fmt.Errorf("attest: %s evidence: %w", e.Kind, err)
	}
	id := sha256.Sum256(e.Bundle) // == b.Hash(): ParseBundle accepts only canonical bytes
	vs := c.verifiers(e.Kind)
	if len(vs) == 0 {
		if knownKind(e.Kind) {
			return nil, fmt.Errorf("%w: no %s verifier configured (for key %x)", ErrUntrustedKind, e.Kind, shortID(id))
		}
		return nil, fmt.Errorf("%w: %q (for key %x)", ErrUnknownKind, e.Kind, shortID(id))
	}
	claims, err := verify(vs, e, now)
	if err != nil {
		return nil, fmt.Errorf("attest: %s evidence for key %x: %w", e.Kind, shortID(id), err)
	}
	if claims.Kind != e.Kind {
		return nil, fmt.Errorf("attest: %s verifier returned claims of kind %q", e.Kind, claims.Kind)
	}
	if err := CheckReportData(claims, id, e.GPU); err != nil {
		return nil, err
	}
	if len(e.GPU) > 0 && c.GPU != nil {
		g, err := verifyGPU(c.GPU, e.GPU, id, now)
		if err != nil {
			return nil, fmt.Errorf("attest: GPU evidence for key %x: %w", shortID(id), err)
		}
		claims.GPU = g
	}
	if err := c.Policy.Check(claims, b, now); err != nil {
		return nil, fmt.Errorf("attest: %s evidence for key %x: %w", e.Kind, shortID(id), err)
	}
	if err := b.CheckValidity(now); err != nil {
		return nil, err
	}
	return &Verified{Bundle: b, KeyID: id, ConfigDigest: b.ConfigDigest(), Claims: claims, Expires: c.expiry(claims, b)}, nil
}

func (c *Checker) verifiers(kind string) []Verifier {
	var vs []Verifier
	for _, v := range c.Verifiers {
		if v != nil && v.Kind() == kind {
			vs = append(vs, v)
		}
	}
	return vs
}

// verify returns the claims of the first of vs that verifies e, or the
// error of the first if none does.
func verify(vs []Verifier, e *Evidence, now time.Time) (*Claims, error) {
	var first error
	for _, v := range vs {
		claims, err := verifyOne(v, e, now)
		if err == nil {
			return claims, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// verifyOne runs v on e. Verifiers parse bytes from the network with
// third-party parsers, some of which have panicked on malformed input
// (go-tdx-guest's abi, found by fuzzing); a panic refuses the evidence as
// malformed instead of crashing the client or proxy.
func verifyOne(v Verifier, e *Evidence, now time.Time) (claims *Claims, err error) {
	defer func() {
		if r := recover(); r != nil {
			claims, err = nil, malformed("%s verifier panicked on this evidence: %v", v.Kind(), r)
		}
	}()
	if ev, ok := v.(EvidenceVerifier); ok {
		return ev.VerifyEvidence(e, now)
	}
	return v.Verify(e.CPU, now)
}

// verifyGPU is g.VerifyGPU, with a panic made a refusal as in verifyOne.
func verifyGPU(g GPUVerifier, gpu []byte, id [32]byte, now time.Time) (claims *GPUClaims, err error) {
	defer func() {
		if r := recover(); r != nil {
			claims, err = nil, malformed("GPU verifier panicked on this evidence: %v", r)
		}
	}()
	return g.VerifyGPU(gpu, id, now)
}

// expiry is the earliest time at which a check of the same evidence would fail.
func (c *Checker) expiry(claims *Claims, b *Bundle) time.Time {
	t := time.Unix(b.Expires, 0).UTC()
	if c.Policy.MaxAge > 0 {
		if stale := issuedAt(claims, b).Add(c.Policy.MaxAge); stale.Before(t) {
			t = stale
		}
	}
	if !claims.ValidUntil.IsZero() && claims.ValidUntil.Before(t) {
		t = claims.ValidUntil
	}
	if g := claims.GPU; g != nil && !g.ValidUntil.IsZero() && g.ValidUntil.Before(t) {
		t = g.ValidUntil
	}
	return t
}

// CheckReportData returns an error wrapping [ErrReportData] unless the
// claims carry ReportDataWithGPU(bundleHash, gpu): the report binds the
// bundle and exactly the GPU evidence that came with it, or none.
func CheckReportData(c *Claims, bundleHash [32]byte, gpu []byte) error {
	if c.ReportData != ReportDataWithGPU(bundleHash, gpu) {
		what := "key bundle"
		if len(gpu) > 0 {
			what = "key bundle and GPU evidence"
		}
		return fmt.Errorf("%w: %s report for key %x carries report_data %x…, not that of its %s", ErrReportData, c.Kind, shortID(bundleHash), c.ReportData[:8], what)
	}
	return nil
}
