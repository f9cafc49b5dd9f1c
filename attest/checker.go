package attest

import (
	"crypto/sha256"
	"fmt"
	"time"
)

// Verified is a key bundle whose evidence passed every check.
type Verified struct {
	Bundle  *Bundle
	KeyID   [32]byte // Bundle.Hash(): the worker's key ID
	Claims  *Claims
	Expires time.Time // when this result stops holding: the earliest of bundle expiry, report age limit, evidence expiry
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
	if err := CheckReportData(claims, id); err != nil {
		return nil, err
	}
	if len(e.GPU) > 0 && c.GPU != nil {
		g, err := c.GPU.VerifyGPU(e.GPU, id, now)
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
	return &Verified{Bundle: b, KeyID: id, Claims: claims, Expires: c.expiry(claims, b)}, nil
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
		var claims *Claims
		var err error
		if ev, ok := v.(EvidenceVerifier); ok {
			claims, err = ev.VerifyEvidence(e, now)
		} else {
			claims, err = v.Verify(e.CPU, now)
		}
		if err == nil {
			return claims, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
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
// claims carry ReportData(bundleHash).
func CheckReportData(c *Claims, bundleHash [32]byte) error {
	if c.ReportData != ReportData(bundleHash) {
		return fmt.Errorf("%w: %s report for key %x carries report_data %x…", ErrReportData, c.Kind, shortID(bundleHash), c.ReportData[:8])
	}
	return nil
}
