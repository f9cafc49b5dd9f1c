package attest

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"time"
)

// Claims is what a [Verifier] learned from CPU evidence whose signatures and
// chains it checked. Policy is applied to Claims separately ([Policy.Check]).
type Claims struct {
	Kind        string
	Measurement [32]byte  // the image hash that allow-lists name (for TDX, over MRTD, RTMRs and config IDs)
	ReportData  [64]byte  // must equal ReportData of the key bundle's hash
	Debug       bool      // the TEE runs in debug mode: its memory is readable by the host
	Issued      time.Time // when the report was made; zero if the kind does not say (TDX quotes do not)
	TCB         string    // the platform's TCB level or status, as the kind reports it

	// ValidUntil is when the evidence stops verifying (the earliest expiry of
	// its certificates or collateral); zero if it does not expire.
	ValidUntil time.Time

	// GPU is what verified GPU evidence says; nil when none came with the
	// bundle or no GPU verifier is configured. [Checker] fills it in.
	GPU *GPUClaims
}

// GPUClaims is what a [GPUVerifier] learned from GPU evidence whose
// signatures it checked and whose nonce is the bundle hash.
type GPUClaims struct {
	Kind string // how it was verified, e.g. "nvidia-nras"
	GPUs []GPU  // every GPU the evidence covers, each in confidential-computing mode

	// ValidUntil is when the verdict lapses (for a token, its expiry); zero
	// if it does not.
	ValidUntil time.Time
}

// GPU is one attested GPU.
type GPU struct {
	ID     string // the GPU's identity as the evidence names it (for NVIDIA, its UEID or index)
	Model  string // hardware model, e.g. "GH100 A01 GSP BROM"
	Arch   string // architecture, e.g. "HOPPER", "BLACKWELL"
	Driver string // driver version
	VBIOS  string // VBIOS version
}

// GPUVerifier checks GPU evidence (the [Evidence.GPU] bytes) and that it is
// bound to the key bundle: its nonce must be bundleHash. Errors must wrap
// [ErrGPU] or [ErrMalformed].
type GPUVerifier interface {
	VerifyGPU(gpu []byte, bundleHash [32]byte, now time.Time) (*GPUClaims, error)
}

// Verifier checks the signatures and certificate chains of one kind of CPU
// evidence, at time now, against the roots it was built with. It applies no
// policy: a verified report for a debug TEE or an unknown image is returned
// with Claims saying so.
type Verifier interface {
	// Kind is the evidence kind verified, e.g. KindTDX.
	Kind() string
	// Verify parses and checks cpu, returning errors that wrap
	// ErrMalformed, ErrNoRoots, ErrChain or ErrSignature.
	Verify(cpu []byte, now time.Time) (*Claims, error)
}

// EvidenceVerifier is a [Verifier] that needs more of the evidence than the
// CPU part, such as shipped collateral or GPU evidence. [Checker] calls
// VerifyEvidence instead of Verify when a verifier implements it.
type EvidenceVerifier interface {
	Verifier
	VerifyEvidence(e *Evidence, now time.Time) (*Claims, error)
}

// MaxClockSkew is how far in the future a report's issue time or a bundle's
// creation time may lie before it is refused.
const MaxClockSkew = 5 * time.Minute

// VerifyChain checks that leaf chains to one of roots through intermediates,
// with every certificate valid at now. It is the chain step of every kind.
// A nil or empty roots is refused with [ErrNoRoots]: it never falls back to
// the system's roots. Other failures wrap [ErrChain] and the x509 error.
func VerifyChain(leaf *x509.Certificate, intermediates []*x509.Certificate, roots *x509.CertPool, now time.Time) ([]*x509.Certificate, error) {
	if roots == nil || roots.Equal(x509.NewCertPool()) {
		return nil, fmt.Errorf("%w: cannot verify certificate %q", ErrNoRoots, leaf.Subject)
	}
	pool := x509.NewCertPool()
	for _, c := range intermediates {
		pool.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: pool,
		CurrentTime:   now,
		// Attestation certificates carry no extended key usages.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: certificate %q: %w", ErrChain, leaf.Subject, err)
	}
	return chains[0], nil
}

// chainNotAfter returns the earliest expiry in chain.
func chainNotAfter(chain []*x509.Certificate) time.Time {
	var t time.Time
	for _, c := range chain {
		if t.IsZero() || c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}

// ParseRoots returns a pool of the certificates in PEM data, which must hold
// at least one PEM block, all of type CERTIFICATE.
func ParseRoots(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, malformed("roots: unexpected PEM block %q", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: roots: certificate %d: %w", ErrMalformed, n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, malformed("roots: no PEM certificates")
	}
	return pool, nil
}

// LoadRoots reads a PEM file of trusted root certificates, such as the
// vendor-root.pem that `cocoon up` writes for its simulated TEE.
func LoadRoots(pemFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(pemFile)
	if err != nil {
		return nil, fmt.Errorf("attest: load roots: %w", err)
	}
	pool, err := ParseRoots(data)
	if err != nil {
		return nil, fmt.Errorf("attest: load roots from %s: %w", pemFile, err)
	}
	return pool, nil
}
