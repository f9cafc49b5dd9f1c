package snp

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/trust"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-go/cocoon/attest"
)

// Roots are AMD's trusted certificates by product line ("Milan", "Genoa",
// "Turin"): the ARK and the ASK (for VCEKs) or ASVK (for VLEKs) it signs.
type Roots map[string][]*trust.AMDRootCerts

// productLines are the product lines go-sev-guest embeds AMD's roots for.
var productLines = []struct {
	name       string
	vcek, vlek []byte
}{
	{"Milan", trust.AskArkMilanVcekBytes, trust.AskArkMilanVlekBytes},
	{"Genoa", trust.AskArkGenoaVcekBytes, trust.AskArkGenoaVlekBytes},
	{"Turin", trust.AskArkTurinVcekBytes, trust.AskArkTurinVlekBytes},
}

// AMDRoots returns AMD's ARK, ASK and ASVK certificates for Milan, Genoa and
// Turin, as embedded in go-sev-guest (the bodies of AMD KDS's
// /vcek/v1/<line>/cert_chain and /vlek/v1/<line>/cert_chain).
func AMDRoots() Roots {
	roots := make(Roots)
	for _, p := range productLines {
		r, err := rootsFromChains(p.name, p.vcek, p.vlek)
		if err != nil {
			panic("snp: embedded AMD roots: " + err.Error())
		}
		roots[p.name] = []*trust.AMDRootCerts{r}
	}
	return roots
}

// LoadRoots reads AMD's roots from dir, which holds for each product line a
// file <line>.pem, the body of AMD KDS's /vcek/v1/<line>/cert_chain (ASK then
// ARK, PEM), and optionally <line>_vlek.pem, that of /vlek/v1/<line>/cert_chain
// (ASVK then ARK), for reports signed by a VLEK. A directory with none of
// these files is refused with attest.ErrNoRoots.
func LoadRoots(dir string) (Roots, error) {
	roots := make(Roots)
	for _, p := range productLines {
		vcek, err := os.ReadFile(filepath.Join(dir, p.name+".pem"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("snp: roots: %w", err)
		}
		vlek, err := os.ReadFile(filepath.Join(dir, p.name+"_vlek.pem"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("snp: roots: %w", err)
		}
		r, err := rootsFromChains(p.name, vcek, vlek)
		if err != nil {
			return nil, fmt.Errorf("snp: roots in %s: %w", dir, err)
		}
		roots[p.name] = []*trust.AMDRootCerts{r}
	}
	if len(roots) == 0 {
		return nil, fmt.Errorf("%w: no <line>.pem in %s", attest.ErrNoRoots, dir)
	}
	return roots, nil
}

// rootsFromChains builds a product line's roots from its KDS VCEK chain and,
// if not empty, its VLEK chain, which must end in the same ARK.
func rootsFromChains(line string, vcekChain, vlekChain []byte) (*trust.AMDRootCerts, error) {
	// Trailing whitespace is trimmed: go-sev-guest refuses any bytes after
	// the ARK, and its own embedded Turin VLEK chain ends in a blank line.
	vcekChain, vlekChain = bytes.TrimSpace(vcekChain), bytes.TrimSpace(vlekChain)
	r := trust.AMDRootCertsProduct(line)
	if err := r.FromKDSCertBytes(vcekChain); err != nil {
		return nil, fmt.Errorf("%s VCEK chain: %w", line, err)
	}
	if len(vlekChain) > 0 {
		v := new(trust.ProductCerts)
		if err := v.FromKDSCertBytes(vlekChain); err != nil {
			return nil, fmt.Errorf("%s VLEK chain: %w", line, err)
		}
		if !v.Ark.Equal(r.ProductCerts.Ark) {
			return nil, fmt.Errorf("%s VLEK chain ends in another ARK", line)
		}
		r.ProductCerts.Asvk = v.Ask
	}
	return r, nil
}

// Endorsement returns the DER certificate of the key that signed r (VCEK or
// VLEK) from the certificates that came with it, or nil if there is none.
func (r *Report) Endorsement() []byte {
	c := r.attestation.GetCertificateChain()
	if r.Signer == abi.VlekReportSigner {
		return c.GetVlekCert()
	}
	return c.GetVcekCert()
}

// VerifySignature checks, at now, that r is signed by the key of the
// endorsement certificate (DER; nil means the one that came with r, see
// Report.Endorsement), a VCEK or VLEK as r's signer info says, and that the
// certificate chains through the ASK or ASVK to an ARK of roots for its
// product line (nil means AMDRoots), and that the certificate certifies the
// platform r reports: its TCB is r's REPORTED_TCB and, for a VCEK, its HWID
// is r's CHIP_ID unless that is masked (all zeros). It fetches nothing and
// does not check revocation. A signature that does not verify wraps
// attest.ErrSignature; a missing, malformed or untrusted certificate, or one
// certifying another TCB or chip, wraps attest.ErrChain.
func VerifySignature(r *Report, endorsement []byte, roots Roots, now time.Time) error {
	return verifySignature(r, endorsement, roots, now, nil)
}

// verifySignature is VerifySignature that, with a non-nil crlGetter, also
// checks through it that AMD has not revoked the ASK or ASVK.
func verifySignature(r *Report, endorsement []byte, roots Roots, now time.Time, crlGetter trust.HTTPSGetter) error {
	if endorsement == nil {
		endorsement = r.Endorsement()
	}
	if len(endorsement) == 0 {
		return fmt.Errorf("%w: sev-snp report: no %v certificate", attest.ErrChain, r.Signer)
	}
	if roots == nil {
		roots = AMDRoots()
	}
	if len(roots) == 0 {
		return fmt.Errorf("%w: sev-snp", attest.ErrNoRoots)
	}
	cert, err := x509.ParseCertificate(endorsement)
	if err != nil {
		return fmt.Errorf("%w: sev-snp %v certificate: %w", attest.ErrChain, r.Signer, err)
	}
	if err := verify.SnpReportSignature(r.Raw(), cert); err != nil {
		return fmt.Errorf("%w: sev-snp report: %w", attest.ErrSignature, err)
	}
	// With the signature known good, go-sev-guest checks the certificate:
	// its AMD extensions and product, and its chain to roots at now.
	a := proto.Clone(r.attestation).(*spb.Attestation)
	a.CertificateChain = &spb.CertificateChain{}
	if r.Signer == abi.VlekReportSigner {
		a.CertificateChain.VlekCert = endorsement
	} else {
		a.CertificateChain.VcekCert = endorsement
	}
	opts := &verify.Options{DisableCertFetching: true, Now: now, TrustedRoots: roots}
	if crlGetter != nil {
		opts.CheckRevocations, opts.Getter = true, crlGetter
	}
	if err := verify.SnpAttestation(a, opts); err != nil {
		return fmt.Errorf("%w: sev-snp %v certificate: %w", attest.ErrChain, r.Signer, err)
	}
	return checkEndorsedPlatform(r, cert)
}

// checkEndorsedPlatform checks that r claims the platform its endorsement
// certificate cert certifies, which verify.SnpAttestation leaves to
// go-sev-guest's validate package: the TCB in cert's AMD extensions must
// equal r's REPORTED_TCB (the TCB the key was derived from), and for a VCEK
// the HWID in cert must equal r's CHIP_ID, unless the CHIP_ID is all zeros
// (the guest policy's MASK_CHIP_ID). Without this, a key certified for old,
// vulnerable firmware could sign a report claiming a newer TCB, which
// CheckPlatform's minimum would then accept. A VLEK is certified for a TCB
// too, but for no chip. Refusals wrap attest.ErrChain.
func checkEndorsedPlatform(r *Report, cert *x509.Certificate) error {
	exts, err := kds.CertificateExtensions(cert, r.Signer)
	if err != nil {
		return fmt.Errorf("%w: sev-snp %v certificate extensions: %w", attest.ErrChain, r.Signer, err)
	}
	p := r.attestation.GetReport()
	// The signed REPORTED_TCB and the Report field CheckPlatform reads.
	for _, tcb := range []kds.TCBVersion{kds.TCBVersion(p.GetReportedTcb()), r.ReportedTCB} {
		if tcb != exts.TCBVersion {
			return fmt.Errorf("%w: sev-snp report's REPORTED_TCB %s (%#x) is not the TCB %s (%#x) its %v certificate certifies",
				attest.ErrChain, TCBString(tcb), uint64(tcb), TCBString(exts.TCBVersion), uint64(exts.TCBVersion), r.Signer)
		}
	}
	if chip := p.GetChipId(); r.Signer == abi.VcekReportSigner && !allZero(chip) && !bytes.Equal(chip, exts.HWID) {
		return fmt.Errorf("%w: sev-snp report's CHIP_ID %x is not the HWID %x of its VCEK certificate",
			attest.ErrChain, chip, exts.HWID)
	}
	return nil
}

// validUntil returns the earliest expiry of the endorsement certificate and
// of the AMD certificates above it.
func validUntil(endorsement []byte, r *Report, roots Roots) time.Time {
	cert, err := x509.ParseCertificate(endorsement)
	if err != nil {
		return time.Time{}
	}
	until := cert.NotAfter
	if _, pc := issuingRoot(cert, r, roots); pc != nil {
		for _, c := range []*x509.Certificate{intermediate(pc, r.Signer), pc.Ark} {
			if c != nil && c.NotAfter.Before(until) {
				until = c.NotAfter
			}
		}
	}
	return until
}

// issuingRoot returns the product line and certificates of roots whose ASK
// or ASVK issued cert, the endorsement of r; nil if none did.
func issuingRoot(cert *x509.Certificate, r *Report, roots Roots) (string, *trust.ProductCerts) {
	for line, rs := range roots {
		for _, root := range rs {
			if pc := root.ProductCerts; pc != nil && bytes.Equal(cert.RawIssuer, issuerOf(pc, r.Signer)) {
				return line, pc
			}
		}
	}
	return "", nil
}

// productLine returns the product line that made r: from its CPUID (version
// 3 reports and later), else from the AMD root that issued its endorsement.
func productLine(r *Report, endorsement []byte, roots Roots) string {
	if fms := r.attestation.GetReport().GetCpuid1EaxFms(); fms != 0 {
		return kds.ProductLineFromFms(fms)
	}
	cert, err := x509.ParseCertificate(endorsement)
	if err != nil {
		return ""
	}
	line, _ := issuingRoot(cert, r, roots)
	return line
}

// DefaultMinTCB returns the lowest reported TCB a Verifier accepts from a
// product line unless told otherwise (WithMinTCB), and false for lines with
// no default, whose reports are refused until a minimum is configured.
//
// Milan: bl=3 tee=0 snp=20 ucode=209 (SNP firmware 1.55.20 and the microcode
// of 2024); a current Milan host reports more (Azure's fleet reported bl=4
// tee=0 snp=21 ucode=211 in February 2025). Genoa and Turin number their
// SVNs differently and have no default here: set one from AMD's security
// bulletins for the fleet you trust. See docs/attestation.md.
func DefaultMinTCB(line string) (kds.TCBVersion, bool) {
	switch line {
	case "Milan":
		v, _ := kds.ComposeTCBParts(kds.TCBParts{BlSpl: 3, TeeSpl: 0, SnpSpl: 20, UcodeSpl: 209})
		return v, true
	}
	return 0, false
}

func intermediate(pc *trust.ProductCerts, s abi.ReportSigner) *x509.Certificate {
	if s == abi.VlekReportSigner {
		return pc.Asvk
	}
	return pc.Ask
}

func issuerOf(pc *trust.ProductCerts, s abi.ReportSigner) []byte {
	if c := intermediate(pc, s); c != nil {
		return c.RawSubject
	}
	return nil
}

// Verifier verifies SEV-SNP reports as an attest.Verifier of kind "sev-snp":
// Parse, VerifySignature against its roots (and, with a KDS getter, AMD's
// CRL), then CheckPlatform (no migration agent, reported TCB at least its
// minimum: WithMinTCB, or DefaultMinTCB of the report's product line). Its claims carry the image hash
// as Measurement; attest.Checker applies the report_data binding and
// attest.Policy (measurement, debug) to them.
type Verifier struct {
	roots        Roots
	minTCB       kds.TCBVersion
	minSet       bool              // minTCB was configured; else DefaultMinTCB of the report's line
	kds          trust.HTTPSGetter // fetches missing VCEKs and CRLs; nil fetches nothing
	noRevocation bool
}

var (
	_ attest.Verifier         = (*Verifier)(nil)
	_ attest.EvidenceVerifier = (*Verifier)(nil)
)

// NewVerifier returns a verifier trusting roots (nil means AMDRoots).
func NewVerifier(roots Roots) *Verifier {
	if roots == nil {
		roots = AMDRoots()
	}
	return &Verifier{roots: roots}
}

// WithMinTCB returns a copy of v that refuses reports, of any product
// line, whose reported TCB is below min in any component (see
// Policy.MinTCB); zero accepts any TCB. Without it, v applies DefaultMinTCB.
func (v *Verifier) WithMinTCB(min kds.TCBVersion) *Verifier {
	w := *v
	w.minTCB, w.minSet = min, true
	return &w
}

// minimumTCB is the lowest TCB v accepts for r, endorsed by endorsement.
func (v *Verifier) minimumTCB(r *Report, endorsement []byte) (kds.TCBVersion, error) {
	if v.minSet {
		return v.minTCB, nil
	}
	line := productLine(r, endorsement, v.roots)
	min, ok := DefaultMinTCB(line)
	if !ok {
		return 0, &attest.PolicyError{Rule: RuleTCB, Detail: fmt.Sprintf("no default minimum TCB for product line %q (reported TCB %s): configure one (sev_snp.min_tcb)", line, TCBString(r.ReportedTCB))}
	}
	return min, nil
}

// Kind returns attest.KindSEVSNP.
func (v *Verifier) Kind() string { return attest.KindSEVSNP }

// Verify parses cpu (see Parse) and checks its signature and chain at now,
// with the endorsement certificate that came with it or, failing that, the
// VCEK fetched through the KDS getter (WithKDS).
func (v *Verifier) Verify(cpu []byte, now time.Time) (*attest.Claims, error) {
	return v.verify(cpu, nil, now)
}

// VerifyEvidence is Verify, except that e.Collateral, when not empty, is the
// DER VCEK or VLEK certificate, for reports that travel without theirs.
func (v *Verifier) VerifyEvidence(e *attest.Evidence, now time.Time) (*attest.Claims, error) {
	var endorsement []byte
	if len(e.Collateral) > 0 {
		endorsement = e.Collateral
	}
	return v.verify(e.CPU, endorsement, now)
}

func (v *Verifier) verify(cpu, endorsement []byte, now time.Time) (*attest.Claims, error) {
	r, err := Parse(cpu)
	if err != nil {
		return nil, err
	}
	if endorsement == nil {
		endorsement = r.Endorsement()
	}
	if len(endorsement) == 0 && v.kds != nil {
		if endorsement, err = FetchVCEK(r, v.kds); err != nil {
			return nil, err
		}
	}
	var crlGetter trust.HTTPSGetter
	if !v.noRevocation {
		crlGetter = v.kds
	}
	if err := verifySignature(r, endorsement, v.roots, now, crlGetter); err != nil {
		return nil, err
	}
	min, err := v.minimumTCB(r, endorsement)
	if err != nil {
		return nil, err
	}
	if err := CheckPlatform(r, min, false); err != nil {
		return nil, err
	}
	c := r.Claims()
	c.ValidUntil = validUntil(endorsement, r, v.roots)
	return c, nil
}

// Claims returns what r claims once verified: the image hash as Measurement,
// report_data, debug from the guest policy, the reported TCB. SEV-SNP
// reports carry no issue time, so Issued is zero; ValidUntil is left zero
// (Verifier fills it in from the certificates).
func (r *Report) Claims() *attest.Claims {
	return &attest.Claims{
		Kind:        attest.KindSEVSNP,
		Measurement: ImageHash(r),
		ReportData:  r.ReportData,
		Debug:       r.Debug(),
		TCB:         TCBString(r.ReportedTCB),
	}
}
