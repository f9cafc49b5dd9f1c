package tdx

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/verify/trust"

	"github.com/cocoon-go/cocoon/attest/collateral"
)

// IntelPCS is the origin of Intel's Provisioning Certification Service, under
// which go-tdx-guest asks for TCB info, QE identity and PCK CRLs.
const IntelPCS = "https://api.trustedservices.intel.com"

// pccsRootCACRLPath is where a PCCS serves the root CA CRL, which Intel
// serves from RootCACRLURL on another host.
const pccsRootCACRLPath = "/sgx/certification/v4/rootcacrl"

// IssuerChainHeaders are the response headers in which Intel PCS sends the
// certificate chains of the collateral's signers: keep them when caching.
var IssuerChainHeaders = []string{pcs.TcbInfoIssuerChainPhrase, pcs.SgxQeIdentityIssuerChainPhrase, pcs.SgxPckCrlIssuerChainPhrase}

// issuerChainHeader returns the header that carries the issuer chain of the
// response to url, a URL go-tdx-guest asks for, or "" if it has none.
func issuerChainHeader(url string) string {
	switch {
	case strings.HasPrefix(url, pcs.TdxBaseURL+"/tcb?"):
		return pcs.TcbInfoIssuerChainPhrase
	case url == pcs.QeIdentityURL():
		return pcs.SgxQeIdentityIssuerChainPhrase
	case strings.HasPrefix(url, pcs.SgxBaseURL+"/pckcrl?"):
		return pcs.SgxPckCrlIssuerChainPhrase
	}
	return ""
}

// CacheOptions returns options for a collateral.Getter of Intel PCS or PCCS
// responses: fetch through client (nil: offline, cache only), keep the
// issuer chain headers, expire each entry at its collateral's next update
// (NextUpdate).
func CacheOptions(client *http.Client) collateral.Options {
	return collateral.Options{Client: client, Headers: IssuerChainHeaders, Expiry: NextUpdate}
}

// NextUpdate is the collateral.ExpiryFunc of Intel collateral: the
// nextUpdate of TCB info or QE identity (JSON bodies), or the NextUpdate of
// a CRL (DER, or hex-encoded DER as some PCCS versions send it). A body that
// is none of these is refused.
func NextUpdate(url string, _ http.Header, body []byte) (time.Time, error) {
	t, err := nextUpdate(body)
	if err != nil {
		return time.Time{}, fmt.Errorf("tdx: collateral from %s: %w", url, err)
	}
	return t, nil
}

func nextUpdate(body []byte) (time.Time, error) {
	if trimmed := bytes.TrimSpace(body); len(trimmed) > 0 && trimmed[0] == '{' {
		var v struct {
			TcbInfo         *struct{ NextUpdate time.Time } `json:"tcbInfo"`
			EnclaveIdentity *struct{ NextUpdate time.Time } `json:"enclaveIdentity"`
		}
		if err := json.Unmarshal(trimmed, &v); err != nil {
			return time.Time{}, err
		}
		switch {
		case v.TcbInfo != nil:
			return v.TcbInfo.NextUpdate, nil
		case v.EnclaveIdentity != nil:
			return v.EnclaveIdentity.NextUpdate, nil
		}
		return time.Time{}, fmt.Errorf("JSON with neither tcbInfo nor enclaveIdentity")
	}
	crl, err := x509.ParseRevocationList(crlDER(body))
	if err != nil {
		return time.Time{}, fmt.Errorf("CRL: %w", err)
	}
	return crl.NextUpdate, nil
}

// crlDER returns body decoded from hex if it is hex (a PCCS may send the
// root CA CRL that way), and body itself otherwise. DER never is: it starts
// with 0x30.
func crlDER(body []byte) []byte {
	if der, err := hex.DecodeString(string(bytes.TrimSpace(body))); err == nil && len(der) > 0 {
		return der
	}
	return body
}

// PCS is a go-tdx-guest getter that fetches Intel's collateral from Intel
// PCS or from a PCCS (Intel's caching service, which serves the same
// /sgx/certification/v4 and /tdx/certification/v4 paths), through a
// collateral.Getter that caches it on disk. Use it as the getter of
// NewVerifier or VerifyCollateral.
type PCS struct {
	base  string // "" for Intel PCS
	cache *collateral.Getter
}

var _ trust.ContextHTTPSGetter = (*PCS)(nil)

// NewPCS returns a getter fetching through cache, whose options should be
// CacheOptions. base is "" or IntelPCS for Intel PCS, or the origin of a
// PCCS such as "https://pccs.example:8081"; with a PCCS, the Intel PCS
// origin of every URL is replaced by base, and the root CA CRL is asked of
// the PCCS (its /sgx/certification/v4/rootcacrl) instead of Intel's
// certificate host.
func NewPCS(base string, cache *collateral.Getter) *PCS {
	base = strings.TrimSuffix(base, "/")
	if base == IntelPCS {
		base = ""
	}
	return &PCS{base: base, cache: cache}
}

// URL returns where p fetches what go-tdx-guest asks for at url.
func (p *PCS) URL(url string) string {
	switch {
	case p.base == "":
		return url
	case url == RootCACRLURL:
		return p.base + pccsRootCACRLPath
	case strings.HasPrefix(url, IntelPCS+"/"):
		return p.base + strings.TrimPrefix(url, IntelPCS)
	}
	return url
}

// Get returns the headers and body of the response to url.
func (p *PCS) Get(url string) (map[string][]string, []byte, error) {
	return p.GetContext(context.Background(), url)
}

// GetContext is Get with a context.
func (p *PCS) GetContext(ctx context.Context, url string) (map[string][]string, []byte, error) {
	if !IntelCollateralURL(url) {
		return nil, nil, fmt.Errorf("tdx: %q is not an Intel collateral URL; not fetched", url)
	}
	r, err := p.cache.Fetch(ctx, p.URL(url))
	if err != nil {
		return nil, nil, err
	}
	body := r.Body
	if url == RootCACRLURL {
		body = crlDER(body)
	}
	return r.Header, body, nil
}
