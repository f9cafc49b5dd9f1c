package tdx

import (
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/collateral"
)

// fakePCS serves the saved collateral of testdata at the paths of Intel PCS
// and of a PCCS (whose root CA CRL it sends hex-encoded, as some PCCS
// versions do), and records the requests.
type fakePCS struct {
	*httptest.Server
	mu       sync.Mutex
	requests []string
}

func newFakePCS(t *testing.T) *fakePCS {
	f := new(fakePCS)
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.URL.RequestURI())
		f.mu.Unlock()
		intelURL := IntelPCS + r.URL.RequestURI()
		switch r.URL.Path {
		case "/IntelSGXRootCA.der":
			intelURL = RootCACRLURL
		case pccsRootCACRLPath:
			intelURL = RootCACRLURL
		}
		h, body, err := Dir(collateralDir).Get(intelURL)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		if r.URL.Path == pccsRootCACRLPath {
			body = []byte(hex.EncodeToString(body))
		}
		for k, v := range h {
			w.Header()[k] = v
		}
		w.Write(body)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakePCS) hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.requests)
}

// client returns a client that sends every request, whatever its host, to f:
// Intel's hosts as seen from the test.
func (f *fakePCS) client() *http.Client {
	target, _ := url.Parse(f.URL)
	base := f.Client().Transport
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host = target.Scheme, target.Host
		return base.RoundTrip(r)
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newCache(t *testing.T, dir string, client *http.Client, c *clock) *collateral.Getter {
	t.Helper()
	opts := CacheOptions(client)
	opts.Now = c.now
	g, err := collateral.New(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestPCSFetchesOnceThenServesFromDisk(t *testing.T) {
	pcs := newFakePCS(t)
	dir := t.TempDir()
	c := &clock{pinned}
	v := NewVerifier(NewPCS("", newCache(t, dir, pcs.client(), c)))
	if _, err := v.Verify(realQuote(t), pinned); err != nil {
		t.Fatalf("first verify: %v", err)
	}
	fetched := pcs.hits()
	if fetched != 4 { // TCB info, QE identity, PCK CRL, root CA CRL
		t.Fatalf("%d requests (%q), want 4", fetched, pcs.requests)
	}
	pcs.Close()
	// A new process: the same directory, no server.
	v = NewVerifier(NewPCS("", newCache(t, dir, pcs.client(), c)))
	if _, err := v.Verify(realQuote(t), pinned); err != nil {
		t.Fatalf("verify from the disk cache: %v", err)
	}
	// Past the collateral's nextUpdate the entries expire; the refetch fails,
	// the stale entries are served, and the verifier judges them at its own
	// clock: still good at the pinned date, refused today.
	c.t = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if _, err := v.Verify(realQuote(t), pinned); err != nil {
		t.Fatalf("verify from stale entries at the pinned date: %v", err)
	}
	if _, err := v.Verify(realQuote(t), time.Now()); !errors.Is(err, ErrCollateral) {
		t.Fatalf("verify from stale entries today: err = %v, want ErrCollateral", err)
	}
	// Offline (no client), the same.
	off := NewVerifier(NewPCS("", newCache(t, dir, nil, c)))
	if _, err := off.Verify(realQuote(t), pinned); err != nil {
		t.Fatalf("offline verify: %v", err)
	}
	if pcs.hits() != fetched {
		t.Fatalf("%d requests after the first verify", pcs.hits()-fetched)
	}
}

func TestPCSRefetchesOnExpiry(t *testing.T) {
	pcs := newFakePCS(t)
	c := &clock{pinned}
	v := NewVerifier(NewPCS("", newCache(t, t.TempDir(), pcs.client(), c)))
	verify := func() {
		t.Helper()
		if _, err := v.Verify(realQuote(t), pinned); err != nil {
			t.Fatal(err)
		}
	}
	verify()
	verify()
	if pcs.hits() != 4 {
		t.Fatalf("%d requests, want 4", pcs.hits())
	}
	// TCB info, QE identity and the PCK CRL have their next update on
	// 2026-02-11, the root CA CRL in April: one day past it, exactly those
	// three are fetched again.
	c.t = time.Date(2026, 2, 12, 0, 0, 0, 0, time.UTC)
	verify()
	refetched := slices.Clone(pcs.requests[4:])
	slices.Sort(refetched)
	if len(refetched) != 3 || !strings.HasPrefix(refetched[0], "/sgx/certification/v4/pckcrl?") ||
		refetched[1] != "/tdx/certification/v4/qe/identity" || !strings.HasPrefix(refetched[2], "/tdx/certification/v4/tcb?fmspc=") {
		t.Fatalf("refetched %q, want PCK CRL, QE identity and TCB info", refetched)
	}
}

func TestPCCS(t *testing.T) {
	pccs := newFakePCS(t)
	p := NewPCS(pccs.URL+"/", newCache(t, t.TempDir(), pccs.Client(), &clock{pinned}))
	for in, want := range map[string]string{
		"https://api.trustedservices.intel.com/tdx/certification/v4/qe/identity":                     pccs.URL + "/tdx/certification/v4/qe/identity",
		"https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der": pccs.URL + "/sgx/certification/v4/pckcrl?ca=platform&encoding=der",
		RootCACRLURL:                pccs.URL + "/sgx/certification/v4/rootcacrl",
		"https://example.com/other": "https://example.com/other",
		"https://api.trustedservices.intel.com.evil.example/x": "https://api.trustedservices.intel.com.evil.example/x",
	} {
		if got := p.URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
	if got := NewPCS(IntelPCS, nil).URL(RootCACRLURL); got != RootCACRLURL {
		t.Errorf("Intel PCS: URL(root CA CRL) = %q", got)
	}
	c, err := NewVerifier(p).Verify(realQuote(t), pinned)
	if err != nil {
		t.Fatalf("verify through the PCCS: %v", err)
	}
	if c.TCB != "UpToDate" {
		t.Errorf("TCB %q", c.TCB)
	}
	if !slices.Contains(pccs.requests, pccsRootCACRLPath) {
		t.Errorf("requests %q, want the PCCS root CA CRL", pccs.requests)
	}
}

func TestNextUpdate(t *testing.T) {
	for file, want := range map[string]string{
		"tcb_info_90c06f000000.json": "2026-02-11T15:46:45Z",
		"qe_identity.json":           "2026-02-11T16:03:13Z",
		"root_ca.crl":                "2026-04-03T11:21:57Z",
	} {
		body, err := os.ReadFile(collateralDir + "/" + file)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]byte{body, []byte(hex.EncodeToString(body))} {
			if strings.HasSuffix(file, ".json") && b[0] != '{' {
				continue
			}
			got, err := NextUpdate("u", nil, b)
			if err != nil || got.Format(time.RFC3339) != want {
				t.Errorf("%s: %v, %v, want %s", file, got, err, want)
			}
		}
	}
	for _, bad := range []string{"", "not collateral", `{"other":{}}`, `{"tcbInfo":`} {
		if _, err := NextUpdate("u", nil, []byte(bad)); err == nil {
			t.Errorf("NextUpdate(%q) accepted", bad)
		}
	}
}

// TestPCSRefusesGarbage: a 200 response that is not collateral is not
// cached, and the verifier refuses the quote.
func TestPCSRefusesGarbage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<html>captive portal</html>"))
	}))
	defer srv.Close()
	_, err := NewVerifier(NewPCS(srv.URL, newCache(t, t.TempDir(), srv.Client(), &clock{pinned}))).Verify(realQuote(t), pinned)
	if !errors.Is(err, ErrCollateral) || !errors.Is(err, attest.ErrChain) {
		t.Fatalf("err = %v, want ErrCollateral", err)
	}
}

// TestPCSFetchesOnlyIntelCollateral: whatever URL a certificate names, a
// PCS getter fetches only Intel's collateral URLs.
func TestPCSFetchesOnlyIntelCollateral(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	p := NewPCS(srv.URL, newCache(t, t.TempDir(), srv.Client(), &clock{pinned}))
	for _, url := range []string{srv.URL + "/internal-admin", "http://169.254.169.254/latest/meta-data", IntelPCS + "/sgx/certification/v4/other"} {
		if _, _, err := p.Get(url); err == nil || !strings.Contains(err.Error(), "not an Intel collateral URL") {
			t.Errorf("Get(%q): err = %v, want a refusal", url, err)
		}
	}
	if hits != 0 {
		t.Errorf("the server was asked %d times", hits)
	}
}
