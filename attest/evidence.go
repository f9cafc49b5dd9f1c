package attest

import (
	"crypto/sha256"
	"fmt"

	"github.com/cocoon-go/cocoon/internal/binenc"
)

// Evidence kinds.
const (
	KindSimulated = "simulated" // software stand-in for development; see package attest/simulated
	KindTDX       = "tdx"       // Intel TDX quote
	KindSEVSNP    = "sev-snp"   // AMD SEV-SNP attestation report
)

// knownKind reports whether kind is one this package knows about, whether or
// not a verifier for it is configured.
func knownKind(kind string) bool {
	return kind == KindSimulated || kind == KindTDX || kind == KindSEVSNP
}

// Limits on evidence. A TDX quote with its PCK chain is about 5 KiB, an SEV-SNP
// report 1,184 bytes plus a VCEK certificate; collateral (TCB info, QE
// identity, CRLs) is tens of KiB.
const (
	MaxEvidenceSize = 1 << 20 // bytes of marshaled evidence
	maxKind         = 32
	maxCPU          = 64 << 10
	maxCollateral   = 512 << 10
	maxGPU          = 256 << 10
)

const (
	evidenceMagic   = "CCNE"
	evidenceVersion = 1
)

// Evidence is what a worker publishes: its key bundle and the TEE's proof
// that the bundle was made inside an attested machine.
type Evidence struct {
	Kind   string // KindSimulated, KindTDX, KindSEVSNP: which verifier reads CPU
	Bundle []byte // the marshaled key Bundle, exactly the bytes whose hash the report binds
	CPU    []byte // the CPU TEE's evidence (quote or report), in the kind's own format

	// Collateral optionally carries what a verifier needs besides CPU to
	// verify offline (TCB info, CRLs), in the kind's own format.
	Collateral []byte
	// GPU optionally carries GPU evidence (NVIDIA confidential computing)
	// bound to the same bundle hash.
	GPU []byte
}

// Marshal returns the wire form of e.
//
// Layout (version 1): "CCNE" 0x01, then kind, bundle, CPU, collateral and
// GPU, each as uint32 big-endian length ‖ bytes; the last two may be empty.
func (e *Evidence) Marshal() []byte {
	w := binenc.AppendMagic(nil, evidenceMagic, evidenceVersion)
	w = binenc.AppendBytes(w, []byte(e.Kind))
	w = binenc.AppendBytes(w, e.Bundle)
	w = binenc.AppendBytes(w, e.CPU)
	w = binenc.AppendBytes(w, e.Collateral)
	return binenc.AppendBytes(w, e.GPU)
}

// ParseEvidence decodes evidence encoded by [Evidence.Marshal]. It checks
// only the framing and limits: the kind's syntax (1 to 32 bytes of a-z, 0-9
// and '-'), non-empty bundle and CPU evidence, nothing left over. The
// contents are parsed by [ParseBundle] and the kind's [Verifier].
func ParseEvidence(p []byte) (*Evidence, error) {
	if len(p) > MaxEvidenceSize {
		return nil, malformed("evidence: %d bytes (at most %d)", len(p), MaxEvidenceSize)
	}
	r := binenc.NewDecoder(p)
	r.Magic(evidenceMagic, evidenceVersion)
	kind := r.BytesNoCopy("kind", 1, maxKind)
	if r.Err() == nil && !validKind(kind) {
		r.Failf("kind %q: want a-z, 0-9 and '-'", kind)
	}
	e := &Evidence{ // Bytes gives nil for the empty optional fields
		Kind:       string(kind),
		Bundle:     r.Bytes("bundle", 1, MaxBundleSize),
		CPU:        r.Bytes("cpu evidence", 1, maxCPU),
		Collateral: r.Bytes("collateral", 0, maxCollateral),
		GPU:        r.Bytes("gpu evidence", 0, maxGPU),
	}
	if err := r.Finish(); err != nil {
		return nil, malformed("evidence: %v", err)
	}
	return e, nil
}

func validKind(k []byte) bool {
	for _, c := range k {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return len(k) > 0
}

// Producer makes CPU evidence inside a TEE: a report carrying reportData,
// signed by the platform. Real kinds read it from the kernel (configfs-tsm);
// package attest/simulated has a software one for development.
type Producer interface {
	// Kind is the evidence kind produced, e.g. KindTDX.
	Kind() string
	// Produce returns CPU evidence whose report_data is reportData.
	Produce(reportData [64]byte) ([]byte, error)
}

// CollateralProducer is a [Producer] that can also attach what verifiers
// need to check its evidence offline (for TDX, a snapshot of Intel's
// collateral), so that a client without Intel PCS access can verify it.
type CollateralProducer interface {
	Producer
	// Collateral returns the collateral for cpu, evidence it produced, in
	// the kind's own format ([Evidence.Collateral]).
	Collateral(cpu []byte) ([]byte, error)
}

// GPUProducer makes GPU evidence whose nonce is a key bundle's hash, for
// [Evidence.GPU]. Package attest/nvidia has one for NVIDIA GPUs in
// confidential-computing mode.
type GPUProducer interface {
	ProduceGPU(nonce [32]byte) ([]byte, error)
}

// Attest validates b, asks gpu, if not nil, for GPU evidence whose nonce is
// b's hash, asks p for a report binding both ([ReportDataWithGPU]) and for
// its collateral, if p is a [CollateralProducer], and returns the evidence a
// worker publishes. Marshal the result to send it.
func Attest(p Producer, b *Bundle, gpu GPUProducer) (*Evidence, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	raw := b.Marshal()
	hash := sha256.Sum256(raw)
	e := &Evidence{Kind: p.Kind(), Bundle: raw}
	var err error
	if gpu != nil { // first: the CPU report binds it
		if e.GPU, err = gpu.ProduceGPU(hash); err != nil {
			return nil, fmt.Errorf("attest: produce GPU evidence: %w", err)
		}
	}
	if e.CPU, err = p.Produce(ReportDataWithGPU(hash, e.GPU)); err != nil {
		return nil, fmt.Errorf("attest: produce %s evidence: %w", p.Kind(), err)
	}
	if cp, ok := p.(CollateralProducer); ok {
		if e.Collateral, err = cp.Collateral(e.CPU); err != nil {
			return nil, fmt.Errorf("attest: %s collateral: %w", p.Kind(), err)
		}
	}
	return e, nil
}
