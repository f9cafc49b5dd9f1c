package tdx

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/cocoon-go/cocoon/internal/atomicfile"
	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/verify/trust"
)

// MaxCollateralFileSize bounds each file a Dir serves. Intel's largest
// collateral, the platform CA's PCK CRL, is a few KiB.
const MaxCollateralFileSize = 1 << 20

// RootCACRLURL is where Intel's SGX root CA certificate says its CRL lives;
// go-tdx-guest asks for it by this URL.
const RootCACRLURL = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der"

// ErrNotInDir means a Dir was asked for a URL it has no file for.
var ErrNotInDir = errors.New("tdx: collateral not in directory")

// Dir serves saved Intel PCS responses from a directory, so quotes can be
// verified offline. It implements go-tdx-guest's trust.HTTPSGetter: pass it as
// the getter of VerifyCollateral or NewVerifier. The layout is:
//
//	tcb_info_<fmspc>.json          body of {TdxBaseURL}/tcb?fmspc=<fmspc> (fmspc in lowercase hex)
//	tcb_info_<fmspc>_chain.txt     its TCB-Info-Issuer-Chain header (URL-encoded PEM, as Intel sends it)
//	qe_identity.json               body of {TdxBaseURL}/qe/identity
//	qe_identity_chain.txt          its SGX-Enclave-Identity-Issuer-Chain header
//	pck_crl_<ca>.crl               DER body of {SgxBaseURL}/pckcrl?ca=<ca>&encoding=der, ca "processor" or "platform"
//	pck_crl_<ca>_chain.txt         its SGX-PCK-CRL-Issuer-Chain header
//	root_ca.crl                    DER body of RootCACRLURL
//
// Any other URL is answered with an error wrapping ErrNotInDir.
type Dir string

var _ trust.HTTPSGetter = Dir("")

// Get returns the saved header and body for url.
func (d Dir) Get(url string) (map[string][]string, []byte, error) {
	body, chain, header, err := d.files(url)
	if err != nil {
		return nil, nil, err
	}
	b, err := d.read(body)
	if err != nil {
		return nil, nil, err
	}
	if chain == "" {
		return map[string][]string{}, b, nil
	}
	c, err := d.read(chain)
	if err != nil {
		return nil, nil, err
	}
	return map[string][]string{header: {strings.TrimSpace(string(c))}}, b, nil
}

// files maps a PCS URL to the body file, the issuer-chain file (empty if the
// response has none) and the header the chain travels in.
func (d Dir) files(url string) (body, chain, header string, err error) {
	tcbPrefix := pcs.TdxBaseURL + "/tcb?fmspc="
	switch {
	case strings.HasPrefix(url, tcbPrefix):
		fmspc := strings.ToLower(strings.TrimPrefix(url, tcbPrefix))
		if !isHex(fmspc, 12) {
			break
		}
		base := "tcb_info_" + fmspc
		return base + ".json", base + "_chain.txt", pcs.TcbInfoIssuerChainPhrase, nil
	case url == pcs.QeIdentityURL():
		return "qe_identity.json", "qe_identity_chain.txt", pcs.SgxQeIdentityIssuerChainPhrase, nil
	case url == pcs.PckCrlURL("processor"), url == pcs.PckCrlURL("platform"):
		ca := "processor"
		if url == pcs.PckCrlURL("platform") {
			ca = "platform"
		}
		base := "pck_crl_" + ca
		return base + ".crl", base + "_chain.txt", pcs.SgxPckCrlIssuerChainPhrase, nil
	case url == RootCACRLURL:
		return "root_ca.crl", "", "", nil
	}
	return "", "", "", fmt.Errorf("%w: no file in %s for %q", ErrNotInDir, string(d), url)
}

// IntelCollateralURL reports whether url is one go-tdx-guest asks for
// Intel's collateral at: TCB info, QE identity, a PCK CRL or the root CA
// CRL. Getters fetch no other URL, whatever a certificate names.
func IntelCollateralURL(url string) bool {
	_, _, _, err := Dir("").files(url)
	return err == nil
}

func (d Dir) read(name string) ([]byte, error) {
	path := filepath.Join(string(d), name)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", ErrNotInDir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("tdx: collateral: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxCollateralFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("tdx: collateral: %w", err)
	}
	if len(b) > MaxCollateralFileSize {
		return nil, fmt.Errorf("tdx: collateral %s: larger than %d bytes", path, MaxCollateralFileSize)
	}
	return b, nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Save writes entries (a snapshot's, see ParseSnapshot) into d in its layout,
// creating the directory, so that the collateral they hold can be used
// offline with d as a getter. Files are written atomically; existing files
// for the same URLs are replaced, others are left alone.
func (d Dir) Save(entries []SnapshotEntry) error {
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return fmt.Errorf("tdx: collateral directory: %w", err)
	}
	for _, e := range entries {
		body, chain, _, err := d.files(e.URL)
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(filepath.Join(string(d), body), e.Body, 0o644); err != nil {
			return fmt.Errorf("tdx: collateral: %w", err)
		}
		if chain == "" {
			continue
		}
		if e.IssuerChain == "" {
			return fmt.Errorf("tdx: collateral for %s has no issuer chain", e.URL)
		}
		if err := atomicfile.WriteFile(filepath.Join(string(d), chain), []byte(e.IssuerChain+"\n"), 0o644); err != nil {
			return fmt.Errorf("tdx: collateral: %w", err)
		}
	}
	return nil
}
