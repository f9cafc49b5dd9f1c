// Package snp verifies AMD SEV-SNP attestation reports offline: signature, VCEK or VLEK chain to AMD's roots, and a policy.
//
// Checking a report follows the steps of package attest, one function each,
// with the heavy lifting done by github.com/google/go-sev-guest:
//
//  1. parse: Parse (attest.ErrMalformed);
//  2. signature: VerifySignature checks the report's ECDSA P-384 signature by
//     its VCEK or VLEK certificate (attest.ErrSignature) and that certificate's
//     chain through AMD's ASK or ASVK to the ARK of its product line
//     (attest.ErrChain), then that the certificate's AMD extensions certify
//     the report's REPORTED_TCB and, for a VCEK, its CHIP_ID unless masked
//     (attest.ErrChain), so that the TCB the policy step reads is the one
//     AMD certified;
//  3. policy: Policy.Check (debug, migration agent, minimum TCB, report_data,
//     image hash).
//
// By default nothing is fetched from the network: the endorsement
// certificate travels with the report (an extended report's certificate
// table, an attestation proto, or attest.Evidence.Collateral), and AMD's
// roots come from AMDRoots (embedded in go-sev-guest) or LoadRoots (a
// directory). Revocation (AMD's CRLs) is not checked.
//
// A Verifier given a getter with WithKDS fetches the VCEK of reports that
// come without one from AMD KDS (FetchVCEK), typically through the disk
// cache of package attest/collateral (CacheOptions), which keeps a VCEK
// until its NotAfter, and by default also checks AMD's CRL of the product
// line's signing keys through it (WithoutRevocationCheck turns that off).
// VLEKs cannot be fetched.
//
// Verifier runs steps 1 and 2 as an attest.Verifier of kind "sev-snp", so it
// slots into attest.Checker, which then applies its own report_data binding
// and attest.Policy.
//
// # Image hash
//
// Cocoon's allow-lists name 32-byte image hashes. For SEV-SNP the image hash
// is (see ImageHash)
//
//	SHA-256(MEASUREMENT)
//
// over the 48 raw bytes of the report's MEASUREMENT field: the launch digest
// of the guest's initial memory (firmware, and with measured direct boot the
// kernel, initrd and command line hashes) and its VMSAs. It is computed
// before launch with a tool such as sev-snp-measure and hashed the same way.
// Host-chosen fields (HOST_DATA, ID block keys) are not part of it.
package snp

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-go/cocoon/attest"
)

// MaxReportSize bounds the input Parse accepts. A report is 1,184 bytes; with
// a certificate table holding the VCEK, ASK and ARK it is under 8 KiB.
const MaxReportSize = 64 << 10

// Report is a parsed SEV-SNP attestation report and the certificates that
// came with it. It has not been verified.
type Report struct {
	Version     uint32
	Measurement [48]byte
	ReportData  [64]byte
	// Policy is the guest policy the VM was launched with (bit 18: a
	// migration agent may be associated; bit 19: debugging allowed).
	Policy      uint64
	ReportedTCB kds.TCBVersion // the TCB the VCEK is derived from
	Signer      abi.ReportSigner

	attestation *spb.Attestation
}

// Parse decodes SEV-SNP evidence with go-sev-guest's abi package: a raw
// 1,184-byte report, a report followed by its certificate table (as
// SNP_GET_EXT_REPORT and configfs-tsm's auxblob return them), or a marshaled
// go-sev-guest Attestation proto (report and certificate chain). Failures
// wrap attest.ErrMalformed.
func Parse(raw []byte) (*Report, error) {
	if len(raw) > MaxReportSize {
		return nil, fmt.Errorf("%w: sev-snp report of %d bytes, more than %d", attest.ErrMalformed, len(raw), MaxReportSize)
	}
	a, err := toAttestation(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: sev-snp report: %w", attest.ErrMalformed, err)
	}
	p := a.GetReport()
	r := &Report{
		Version:     p.GetVersion(),
		Policy:      p.GetPolicy(),
		ReportedTCB: kds.TCBVersion(p.GetReportedTcb()),
		attestation: a,
	}
	if len(p.GetMeasurement()) != len(r.Measurement) || len(p.GetReportData()) != len(r.ReportData) {
		return nil, fmt.Errorf("%w: sev-snp report version %d: bad measurement or report_data size", attest.ErrMalformed, r.Version)
	}
	copy(r.Measurement[:], p.GetMeasurement())
	copy(r.ReportData[:], p.GetReportData())
	info, err := abi.ParseSignerInfo(p.GetSignerInfo())
	if err != nil {
		return nil, fmt.Errorf("%w: sev-snp report signer info: %w", attest.ErrMalformed, err)
	}
	r.Signer = info.SigningKey
	return r, nil
}

// toAttestation tells the three input forms apart. A raw report begins with
// its little-endian version (2 or more), never with 0x0a, the tag of the
// Attestation proto's first field.
func toAttestation(raw []byte) (*spb.Attestation, error) {
	if len(raw) > 0 && raw[0] == 0x0a {
		a := new(spb.Attestation)
		if err := proto.Unmarshal(raw, a); err != nil {
			return nil, fmt.Errorf("attestation proto: %w", err)
		}
		if a.GetReport() == nil {
			return nil, fmt.Errorf("attestation proto without a report")
		}
		// Re-encode the report to run the same format checks as raw input.
		b, err := abi.ReportToAbiBytes(a.GetReport())
		if err != nil {
			return nil, err
		}
		if a.Report, err = abi.ReportToProto(b); err != nil {
			return nil, err
		}
		if a.CertificateChain == nil {
			a.CertificateChain = new(spb.CertificateChain)
		}
		return a, nil
	}
	if len(raw) < abi.ReportSize {
		return nil, fmt.Errorf("%d bytes, a report is %d", len(raw), abi.ReportSize)
	}
	if len(raw) == abi.ReportSize {
		p, err := abi.ReportToProto(raw)
		if err != nil {
			return nil, err
		}
		return &spb.Attestation{Report: p, CertificateChain: new(spb.CertificateChain)}, nil
	}
	return abi.ReportCertsToProto(raw)
}

// Debug reports whether the guest policy allows debugging, which lets the
// host read and write the guest's memory.
func (r *Report) Debug() bool { return r.Policy&(1<<19) != 0 }

// MigrationAgent reports whether the guest policy allows a migration agent,
// which can export the guest's memory.
func (r *Report) MigrationAgent() bool { return r.Policy&(1<<18) != 0 }

// Raw returns the report's 1,184 ABI bytes, without certificates.
func (r *Report) Raw() []byte {
	b, err := abi.ReportToAbiBytes(r.attestation.GetReport())
	if err != nil { // the report came through abi.ReportToProto
		panic("snp: re-encoding a parsed report: " + err.Error())
	}
	return b
}

// ImageHash returns the image hash of r, the measurement allow-lists name:
// SHA-256 of the 48-byte MEASUREMENT (see the package documentation).
func ImageHash(r *Report) [32]byte { return sha256.Sum256(r.Measurement[:]) }

// TCBString formats a TCB version as Claims.TCB carries it, such as
// "bl=2 tee=0 snp=5 ucode=68".
func TCBString(v kds.TCBVersion) string {
	p := kds.DecomposeTCBVersion(v)
	var b strings.Builder
	fmt.Fprintf(&b, "bl=%d tee=%d snp=%d ucode=%d", p.BlSpl, p.TeeSpl, p.SnpSpl, p.UcodeSpl)
	return b.String()
}
