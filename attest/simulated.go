package attest

import (
	"crypto/ed25519"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/cocoon-go/cocoon/internal/binenc"
)

// SimulatedWarning is the warning every node using the simulated TEE should
// print loudly at startup.
const SimulatedWarning = "WARNING: simulated TEE in use. Simulated evidence is signed with a development key " +
	"anyone can obtain; it proves nothing and gives no confidentiality. Never use it in production."

// SimulatedTCB is the TCB string of simulated claims.
const SimulatedTCB = "simulated"

// A simulated report is shaped like a TDX quote: a header, a body holding the
// measurement and report_data, and signature data (a signature over header
// and body by the attestation key, and the attestation key's certificate
// chain, leaf first, to the vendor root).
//
//	header (8 bytes)    version uint16 = 1 | attestation key type uint16 = 1 (Ed25519) | TEE type "CSIM"
//	body   (112 bytes)  measurement [32] | report_data [64] | attributes uint64 (bit 0: debug) | issued int64 (unix s)
//	signature data      signature (uint32 length ‖ 64 bytes) | certificate count uint8 (1 to 4) | DER certificates (uint32 length ‖ bytes)
const (
	SimulatedReportVersion = 1
	simKeyTypeEd25519      = 1
	simTEEType             = "CSIM"
	simAttrDebug           = 1 << 0
	simMaxCerts            = 4
	simMaxCert             = 8 << 10
	simSignedLen           = 8 + 112
)

// SimulatedReport is the CPU evidence of kind "simulated", parsed but not
// verified.
type SimulatedReport struct {
	Measurement  [32]byte
	ReportData   [64]byte
	Debug        bool
	Issued       int64    // unix seconds
	Signature    []byte   // Ed25519 over SignedBytes, by the leaf certificate's key
	Certificates [][]byte // DER, leaf first
}

// SignedBytes returns the header and body: the bytes the attestation key signs.
func (r *SimulatedReport) SignedBytes() []byte {
	w := binenc.AppendU16(nil, SimulatedReportVersion)
	w = binenc.AppendU16(w, simKeyTypeEd25519)
	w = append(w, simTEEType...)
	w = append(w, r.Measurement[:]...)
	w = append(w, r.ReportData[:]...)
	var attr uint64
	if r.Debug {
		attr |= simAttrDebug
	}
	w = binenc.AppendU64(w, attr)
	return binenc.AppendU64(w, uint64(r.Issued))
}

// Marshal returns the wire form of r.
func (r *SimulatedReport) Marshal() []byte {
	w := binenc.AppendBytes(r.SignedBytes(), r.Signature)
	w = append(w, uint8(len(r.Certificates)))
	for _, c := range r.Certificates {
		w = binenc.AppendBytes(w, c)
	}
	return w
}

// ParseSimulatedReport decodes a report encoded by [SimulatedReport.Marshal].
// It does not verify it.
func ParseSimulatedReport(p []byte) (*SimulatedReport, error) {
	if len(p) > maxCPU {
		return nil, malformed("simulated report: %d bytes (at most %d)", len(p), maxCPU)
	}
	r := binenc.NewDecoder(p)
	if v := r.U16("version"); r.Err() == nil && v != SimulatedReportVersion {
		r.Failf("version %d not supported (want %d)", v, SimulatedReportVersion)
	}
	if t := r.U16("attestation key type"); r.Err() == nil && t != simKeyTypeEd25519 {
		r.Failf("attestation key type %d not supported", t)
	}
	if t := r.FixedNoCopy("TEE type", len(simTEEType)); r.Err() == nil && string(t) != simTEEType {
		r.Failf("TEE type %q is not %q", t, simTEEType)
	}
	rep := &SimulatedReport{}
	r.Fixed("measurement", rep.Measurement[:])
	r.Fixed("report_data", rep.ReportData[:])
	attr := r.U64("attributes")
	if attr&^simAttrDebug != 0 {
		r.Failf("unknown attribute bits %#x", attr&^simAttrDebug)
	}
	rep.Debug = attr&simAttrDebug != 0
	rep.Issued = int64(r.U64("issued"))
	rep.Signature = r.Bytes("signature", ed25519.SignatureSize, ed25519.SignatureSize)
	n := int(r.U8("certificate count"))
	if r.Err() == nil && (n < 1 || n > simMaxCerts) {
		r.Failf("%d certificates (want 1 to %d)", n, simMaxCerts)
	}
	for i := 0; i < n && r.Err() == nil; i++ {
		rep.Certificates = append(rep.Certificates, r.Bytes("certificate", 1, simMaxCert))
	}
	if err := r.Finish(); err != nil {
		return nil, malformed("simulated report: %v", err)
	}
	return rep, nil
}

// SimulatedVerifier verifies evidence of kind "simulated" against the root of
// a development vendor (see package attest/simulated). It runs the steps a
// real verifier runs (parse, certificate chain to the vendor root, report
// signature by the chain's leaf), with the dev root swapped in for Intel's or
// AMD's. Trusting it is trusting whoever holds the dev vendor's seed.
type SimulatedVerifier struct {
	roots *x509.CertPool
}

// NewSimulatedVerifier returns a verifier of simulated evidence signed by a
// vendor whose root certificate is in roots (see [LoadRoots]). With nil or
// empty roots every report is refused with [ErrNoRoots].
func NewSimulatedVerifier(roots *x509.CertPool) *SimulatedVerifier {
	return &SimulatedVerifier{roots: roots}
}

// Kind returns KindSimulated.
func (v *SimulatedVerifier) Kind() string { return KindSimulated }

// Verify checks a simulated report: its certificate chain to the vendor root
// at now, then its signature.
func (v *SimulatedVerifier) Verify(cpu []byte, now time.Time) (*Claims, error) {
	rep, err := ParseSimulatedReport(cpu)
	if err != nil {
		return nil, err
	}
	certs := make([]*x509.Certificate, len(rep.Certificates))
	for i, der := range rep.Certificates {
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("%w: simulated report: certificate %d: %w", ErrMalformed, i, err)
		}
	}
	leaf := certs[0]
	chain, err := VerifyChain(leaf, certs[1:], v.roots, now)
	if err != nil {
		return nil, fmt.Errorf("simulated report: %w", err)
	}
	key, ok := leaf.PublicKey.(ed25519.PublicKey)
	if !ok || leaf.IsCA || leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return nil, fmt.Errorf("%w: simulated report: certificate %q is not an Ed25519 attestation key", ErrChain, leaf.Subject)
	}
	if !ed25519.Verify(key, rep.SignedBytes(), rep.Signature) {
		return nil, fmt.Errorf("%w: simulated report signed by %q", ErrSignature, leaf.Subject)
	}
	return &Claims{
		Kind:        KindSimulated,
		Measurement: rep.Measurement,
		ReportData:  rep.ReportData,
		Debug:       rep.Debug,
		Issued:      time.Unix(rep.Issued, 0).UTC(),
		TCB:         SimulatedTCB,
		ValidUntil:  chainNotAfter(chain),
	}, nil
}
