package snp

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/collateral"
)

// KDS is the origin of AMD's Key Distribution Service, which serves VCEK
// certificates and the CRLs of AMD's signing keys.
const KDS = "https://kdsintf.amd.com"

// CacheOptions returns options for a collateral.Getter of AMD KDS responses:
// fetch through client (nil: offline, cache only) and keep each response
// until it lapses (KDSExpiry). Use the Getter's SEV adapter as the getter of
// Verifier.WithKDS.
func CacheOptions(client *http.Client) collateral.Options {
	return collateral.Options{Client: client, Expiry: KDSExpiry}
}

// KDSExpiry is the collateral.ExpiryFunc of AMD KDS responses: a VCEK
// (DER certificate) expires at its NotAfter, a CRL (URLs ending in /crl) at
// its NextUpdate; other responses, such as PEM certificate chains, give no
// time. A body at a VCEK or CRL URL that does not parse is refused.
func KDSExpiry(url string, _ http.Header, body []byte) (time.Time, error) {
	switch {
	case strings.HasSuffix(url, "/crl"):
		crl, err := x509.ParseRevocationList(body)
		if err != nil {
			return time.Time{}, fmt.Errorf("snp: CRL from %s: %w", url, err)
		}
		return crl.NextUpdate, nil
	case strings.Contains(url, "/vcek/v1/") && !strings.HasSuffix(url, "/cert_chain"):
		cert, err := x509.ParseCertificate(body)
		if err != nil {
			return time.Time{}, fmt.Errorf("snp: VCEK from %s: %w", url, err)
		}
		return cert.NotAfter, nil
	}
	return time.Time{}, nil
}

// VCEKURLs returns the AMD KDS URLs at which the VCEK of r may be found:
// one for reports that name their CPU (version 3 and later), else one per
// product line that made version 2 reports (Milan, Genoa).
func VCEKURLs(r *Report) ([]string, error) {
	if r.Signer != abi.VcekReportSigner {
		return nil, fmt.Errorf("sev-snp report signed by a %v: only VCEKs can be fetched from AMD KDS", r.Signer)
	}
	p := r.attestation.GetReport()
	chipID := p.GetChipId()
	if len(chipID) != abi.ChipIDSize || allZero(chipID) {
		return nil, errors.New("sev-snp report without a chip ID (MaskChipId set): its VCEK cannot be fetched")
	}
	lines := []string{"Milan", "Genoa"}
	if fms := p.GetCpuid1EaxFms(); fms != 0 {
		lines = []string{kds.ProductLineFromFms(fms)}
	}
	var urls []string
	for _, line := range lines {
		hwid := chipID
		if line == "Turin" { // KDS names Turin chips by the first 8 bytes of their ID
			hwid = chipID[:8]
		}
		urls = append(urls, kds.VCEKCertURL(line, hwid, r.ReportedTCB))
	}
	return urls, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// FetchVCEK fetches the DER VCEK certificate of r from AMD KDS through
// getter (see VCEKURLs). The certificate is not checked here; VerifySignature
// does that. Failures wrap attest.ErrChain: without the certificate the
// report cannot be trusted.
func FetchVCEK(r *Report, getter trust.HTTPSGetter) ([]byte, error) {
	urls, err := VCEKURLs(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", attest.ErrChain, err)
	}
	var errs []error
	for _, url := range urls {
		der, err := getter.Get(url)
		if err == nil {
			return der, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%w: sev-snp VCEK: %w", attest.ErrChain, errors.Join(errs...))
}

// WithKDS returns a copy of v that fetches, through getter, the VCEK of
// reports that come without one (neither in their certificate table nor in
// attest.Evidence.Collateral), typically a collateral.Getter made with
// CacheOptions, adapted by its SEV method. VLEKs cannot be fetched: a report
// signed by one must bring it.
//
// With a getter, v also checks revocation by default: it fetches the CRL of
// the ARK of each report's product line and refuses reports whose ASK or
// ASVK it revokes, or whose CRL cannot be fetched or is not signed by the
// ARK (go-sev-guest's CheckRevocations). See WithoutRevocationCheck.
func (v *Verifier) WithKDS(getter trust.HTTPSGetter) *Verifier {
	w := *v
	w.kds = getter
	return &w
}

// WithoutRevocationCheck returns a copy of v that does not fetch AMD's CRLs
// even with a KDS getter: a revoked ASK would then go unnoticed.
func (v *Verifier) WithoutRevocationCheck() *Verifier {
	w := *v
	w.noRevocation = true
	return &w
}
