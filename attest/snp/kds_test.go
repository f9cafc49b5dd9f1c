package snp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/collateral"
	"github.com/cocoon-go/cocoon/attest/snp"
)

// fakeKDS serves the sample VCEK at its AMD KDS path, and crl (nil: 404) as
// the Milan CRL, to any host: it stands for kdsintf.amd.com.
type fakeKDS struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string
	crl      []byte
}

func newFakeKDS(t *testing.T) *fakeKDS {
	_, vcek := sample(t)
	f := new(fakeKDS)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.URL.RequestURI())
		crl := f.crl
		f.mu.Unlock()
		switch {
		case r.URL.Path == "/vcek/v1/Milan/crl" && crl != nil:
			w.Write(crl)
		case strings.HasPrefix(r.URL.Path, "/vcek/v1/Milan/") && r.URL.RawQuery == "blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68":
			w.Write(vcek)
		default:
			http.Error(w, "Not Found", http.StatusNotFound)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeKDS) client() *http.Client {
	target, _ := url.Parse(f.URL)
	base := f.Client().Transport
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		if r.URL.Host != "kdsintf.amd.com" {
			return nil, errors.New("test: request to " + r.URL.Host)
		}
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host = target.Scheme, target.Host
		return base.RoundTrip(r)
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newKDSCache(t *testing.T, dir string, client *http.Client) *collateral.Getter {
	t.Helper()
	opts := snp.CacheOptions(client)
	opts.Now = func() time.Time { return inValidity }
	g, err := collateral.New(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestVCEKFromKDS: a bare 1,184-byte report verifies with its VCEK fetched
// from KDS, then from the disk cache once KDS is gone.
func TestVCEKFromKDS(t *testing.T) {
	raw, vcek := sample(t)
	kds := newFakeKDS(t)
	dir := t.TempDir()
	cache := newKDSCache(t, dir, kds.client())
	v := snp.NewVerifier(nil).WithKDS(cache.SEV()).WithoutRevocationCheck().WithMinTCB(sampleTCB)
	c, err := v.Verify(raw, inValidity)
	if err != nil {
		t.Fatalf("Verify with KDS: %v", err)
	}
	if want := time.Date(2029, time.September, 24, 0, 55, 28, 0, time.UTC); !c.ValidUntil.Equal(want) {
		t.Errorf("ValidUntil %v, want %v", c.ValidUntil, want)
	}
	if len(kds.requests) != 1 || !strings.HasPrefix(kds.requests[0], "/vcek/v1/Milan/") {
		t.Fatalf("requests %q, want the Milan VCEK", kds.requests)
	}
	r, err := snp.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	urls, err := snp.VCEKURLs(r)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(vcek)
	if e, err := cache.Get(urls[0]); err != nil || !e.ExpiresAt.Equal(cert.NotAfter) {
		t.Fatalf("cached VCEK expires %v (%v), want its NotAfter %v", e.ExpiresAt, err, cert.NotAfter)
	}

	kds.Close()
	v = snp.NewVerifier(nil).WithKDS(newKDSCache(t, dir, kds.client()).SEV()).WithoutRevocationCheck().WithMinTCB(sampleTCB)
	if _, err := v.VerifyEvidence(&attest.Evidence{Kind: attest.KindSEVSNP, CPU: raw}, inValidity); err != nil {
		t.Fatalf("Verify from the disk cache: %v", err)
	}
	if _, err := snp.NewVerifier(nil).Verify(raw, inValidity); !errors.Is(err, attest.ErrChain) {
		t.Fatalf("Verify without KDS: %v, want ErrChain", err)
	}
}

func TestVCEKNotAtKDS(t *testing.T) {
	raw, _ := sample(t)
	r, err := snp.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	kds := newFakeKDS(t)
	r.ReportedTCB++ // another TCB: KDS has no VCEK for it
	_, err = snp.FetchVCEK(r, newKDSCache(t, t.TempDir(), kds.client()).SEV())
	if !errors.Is(err, attest.ErrChain) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v, want ErrChain with the 404", err)
	}
	r.Signer = abi.VlekReportSigner
	if _, err := snp.VCEKURLs(r); err == nil {
		t.Fatal("VCEKURLs of a VLEK-signed report: no error")
	}
}

// TestSNPChecksRevocationByDefault: a verifier that can reach AMD KDS
// checks AMD's CRL unless told not to, and refuses when it cannot.
func TestSNPChecksRevocationByDefault(t *testing.T) {
	raw, _ := sample(t)
	kds := newFakeKDS(t)
	v := snp.NewVerifier(nil).WithKDS(newKDSCache(t, t.TempDir(), kds.client()).SEV()).WithMinTCB(sampleTCB)
	// No CRL at KDS: refused.
	if _, err := v.Verify(raw, inValidity); !errors.Is(err, attest.ErrChain) {
		t.Fatalf("without a CRL: err = %v, want ErrChain", err)
	}
	if !strings.HasSuffix(kds.requests[len(kds.requests)-1], "/vcek/v1/Milan/crl") {
		t.Fatalf("last request %q, want the Milan CRL", kds.requests[len(kds.requests)-1])
	}
	// Told not to, it fetches no CRL.
	kds.mu.Lock()
	kds.requests = nil
	kds.mu.Unlock()
	if _, err := v.WithoutRevocationCheck().Verify(raw, inValidity); err != nil {
		t.Fatal(err)
	}
	for _, req := range kds.requests {
		if strings.HasSuffix(req, "/crl") {
			t.Fatalf("CRL fetched WithoutRevocationCheck")
		}
	}
	// A CRL not signed by AMD's ARK: refused.
	kds.mu.Lock()
	kds.crl = foreignCRL(t)
	kds.mu.Unlock()
	_, err := snp.NewVerifier(nil).WithKDS(newKDSCache(t, t.TempDir(), kds.client()).SEV()).WithMinTCB(sampleTCB).Verify(raw, inValidity)
	if !errors.Is(err, attest.ErrChain) || !strings.Contains(err.Error(), "ARK") {
		t.Fatalf("with a foreign CRL: err = %v, want ErrChain naming the ARK", err)
	}
	if !strings.HasSuffix(kds.requests[len(kds.requests)-1], "/vcek/v1/Milan/crl") {
		t.Fatalf("last request %q, want the Milan CRL", kds.requests[len(kds.requests)-1])
	}
}

// foreignCRL returns a well-formed CRL signed by a key that is not AMD's.
func foreignCRL(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ARK-Milan"}, NotBefore: inValidity.Add(-time.Hour),
		NotAfter: inValidity.Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCRLSign | x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: inValidity.Add(-time.Hour), NextUpdate: inValidity.Add(time.Hour)}, ca, key)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

func TestKDSExpiry(t *testing.T) {
	_, vcek := sample(t)
	cert, _ := x509.ParseCertificate(vcek)
	vcekURL := snp.KDS + "/vcek/v1/Milan/00?blSPL=2"
	if got, err := snp.KDSExpiry(vcekURL, nil, vcek); err != nil || !got.Equal(cert.NotAfter) {
		t.Errorf("VCEK: %v, %v", got, err)
	}
	crl := foreignCRL(t)
	if got, err := snp.KDSExpiry(snp.KDS+"/vcek/v1/Milan/crl", nil, crl); err != nil || !got.Equal(inValidity.Add(time.Hour)) {
		t.Errorf("CRL: %v, %v", got, err)
	}
	chain, _ := os.ReadFile("testdata/vcek.der") // any body: cert_chain gives no time
	if got, err := snp.KDSExpiry(snp.KDS+"/vcek/v1/Milan/cert_chain", nil, chain); err != nil || !got.IsZero() {
		t.Errorf("cert_chain: %v, %v", got, err)
	}
	for _, u := range []string{vcekURL, snp.KDS + "/vcek/v1/Milan/crl"} {
		if _, err := snp.KDSExpiry(u, nil, []byte("<html>")); err == nil {
			t.Errorf("%s: garbage accepted", u)
		}
	}
}
