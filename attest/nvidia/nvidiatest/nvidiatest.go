// Package nvidiatest provides test doubles of NVIDIA's attestation service;
// never for production. Its [NRAS] is an httptest server that answers like
// NVIDIA's Remote Attestation Service with tokens signed by a test-only
// P-384 key, its [Signer] makes such tokens without a server, and its
// [Collector] stands in for NVML with made-up GPU evidence.
//
// Evidence from these doubles verifies only with the double's own keys
// ([Signer.Keys]), which no real deployment pins.
package nvidiatest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cocoon-go/cocoon/attest/nvidia"
)

// TokenLife is how long the doubles' tokens are valid, as NRAS's are.
const TokenLife = time.Hour

// Signer makes NRAS-shaped tokens with a test-only P-384 key: the signing
// half of [NRAS], usable without a server.
type Signer struct {
	Key    *ecdsa.PrivateKey
	Kid    string // the key ID in each token's header and in the JWKS
	Issuer string // iss of every token; nvidia.DefaultIssuer unless changed
	now    func() time.Time
}

// Option changes a [Signer] or an [NRAS] as it is made.
type Option func(*Signer)

// WithClock sets the clock that dates tokens and the JWKS certificate
// (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Signer) { s.now = now } }

// NewSigner returns a signer with a fresh key under kid.
func NewSigner(kid string, opts ...Option) *Signer {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	s := &Signer{Key: key, Kid: kid, Issuer: nvidia.DefaultIssuer, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// JWKS returns the signer's public key as NRAS publishes its keys: x, y and
// an x5c certificate for the same key.
func (s *Signer) JWKS() []byte {
	now := s.now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "Test double of NVIDIA Attestation Service"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(48 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &s.Key.PublicKey, s.Key)
	if err != nil {
		panic(err)
	}
	point, err := s.Key.PublicKey.Bytes() // 0x04 ‖ x ‖ y
	if err != nil {
		panic(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	set := map[string]any{"keys": []map[string]any{{
		"kty": "EC", "crv": "P-384", "kid": s.Kid,
		"x": b64(point[1:49]), "y": b64(point[49:]),
		"x5c": []string{base64.StdEncoding.EncodeToString(der)},
	}}}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err)
	}
	return b
}

// Keys returns the signer's JWKS as a pinned key set, for nvidia.NewVerifier.
func (s *Signer) Keys() *nvidia.KeySet {
	ks, err := nvidia.ParseJWKS(s.JWKS())
	if err != nil {
		panic(err)
	}
	return ks
}

// Sign signs claims with ES384 under the signer's kid.
func (s *Signer) Sign(claims jwt.MapClaims) string {
	t := jwt.NewWithClaims(jwt.SigningMethodES384, claims)
	t.Header["kid"] = s.Kid
	delete(t.Header, "typ") // NRAS's header is {"kid", "alg"} only
	raw, err := t.SignedString(s.Key)
	if err != nil {
		panic(err)
	}
	return raw
}

func (s *Signer) registered(nonce string) jwt.MapClaims {
	now := s.now()
	return jwt.MapClaims{
		"iss":       s.Issuer,
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(TokenLife).Unix(),
		"jti":       "test-jti",
		"eat_nonce": nonce,
	}
}

// gpuClaims are the claims of a healthy H100 in CC mode, as NRAS's claims
// version 2.0 reports them (see ../testdata/nras-response-h100.json).
func (s *Signer) gpuClaims(nonce string, i int) jwt.MapClaims {
	c := s.registered(nonce)
	for k, v := range map[string]any{
		"ueid":                                   fmt.Sprint(642960189298007511 + i),
		"oemid":                                  "5703",
		"hwmodel":                                "GH100 A01 GSP BROM",
		"secboot":                                true,
		"dbgstat":                                "disabled",
		"measres":                                "success",
		"x-nvidia-gpu-driver-version":            "570.133.20",
		"x-nvidia-gpu-vbios-version":             "96.00.CF.00.02",
		"x-nvidia-attestation-warning":           nil,
		"x-nvidia-gpu-arch-check":                true,
		"x-nvidia-gpu-attestation-report-parsed": true,
		"x-nvidia-gpu-attestation-report-nonce-match":          true,
		"x-nvidia-gpu-attestation-report-signature-verified":   true,
		"x-nvidia-gpu-attestation-report-cert-chain-validated": true,
		"x-nvidia-gpu-driver-rim-fetched":                      true,
		"x-nvidia-gpu-driver-rim-schema-validated":             true,
		"x-nvidia-gpu-driver-rim-signature-verified":           true,
		"x-nvidia-gpu-driver-rim-measurements-available":       true,
		"x-nvidia-gpu-driver-rim-cert-validated":               true,
		"x-nvidia-gpu-vbios-rim-fetched":                       true,
		"x-nvidia-gpu-vbios-rim-schema-validated":              true,
		"x-nvidia-gpu-vbios-rim-signature-verified":            true,
		"x-nvidia-gpu-vbios-rim-measurements-available":        true,
		"x-nvidia-gpu-vbios-rim-cert-validated":                true,
		"x-nvidia-gpu-vbios-index-no-conflict":                 true,
	} {
		c[k] = v
	}
	return c
}

// OverallClaims returns the claims of an overall token with nonce (hex)
// listing the digest of each detached token under its name.
func (s *Signer) OverallClaims(nonce string, detached map[string]string) jwt.MapClaims {
	c := s.registered(nonce)
	submods := map[string]any{}
	for name, tok := range detached {
		d := sha256.Sum256([]byte(tok))
		submods[name] = []any{"DIGEST", []any{"SHA-256", hex.EncodeToString(d[:])}}
	}
	c["sub"] = "NVIDIA-PLATFORM-ATTESTATION"
	c["x-nvidia-ver"] = "2.0"
	c["x-nvidia-overall-att-result"] = true
	c["submods"] = submods
	return c
}

// Edits alter a token set as [Signer.Evidence] makes it; nil fields change
// nothing.
type Edits struct {
	GPU     func(name string, c jwt.MapClaims) // before a detached token is signed
	Overall func(c jwt.MapClaims)              // before the overall token is signed
}

// Evidence returns a token set for n healthy H100s ("GPU-0", …) with nonce,
// as NRAS would issue it.
func (s *Signer) Evidence(nonce [32]byte, n int, ed Edits) *nvidia.Evidence {
	h := hex.EncodeToString(nonce[:])
	detached := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("GPU-%d", i)
		c := s.gpuClaims(h, i)
		if ed.GPU != nil {
			ed.GPU(name, c)
		}
		detached[name] = s.Sign(c)
	}
	oc := s.OverallClaims(h, detached)
	if ed.Overall != nil {
		ed.Overall(oc)
	}
	e := &nvidia.Evidence{Overall: s.Sign(oc)}
	for name, tok := range detached {
		e.GPUs = append(e.GPUs, nvidia.Detached{Name: name, Token: tok})
	}
	sort.Slice(e.GPUs, func(i, j int) bool { return e.GPUs[i].Name < e.GPUs[j].Name })
	return e
}

// NRAS is a test double of NVIDIA's Remote Attestation Service: an httptest
// server answering POST /v3/attest/gpu with tokens its [Signer] signs, and
// serving its key at /.well-known/jwks.json. It checks the shape of
// requests, not the GPU evidence, which it only requires to carry the nonce
// (as [Collector]'s reports do).
type NRAS struct {
	*Signer
	srv *httptest.Server

	mu       sync.Mutex
	status   int    // when not 0 or 200, the status of every attest response
	errBody  string // its body
	requests []Request
}

// Request is an attest request the double received: the body NRAS's API
// takes, and the request's headers.
type Request struct {
	Nonce         string `json:"nonce"`
	Arch          string `json:"arch"`
	ClaimsVersion string `json:"claims_version"`
	EvidenceList  []struct {
		Certificate string `json:"certificate"`
		Evidence    string `json:"evidence"`
	} `json:"evidence_list"`
	Header http.Header `json:"-"`
}

// NewNRAS starts a double with a fresh key, whose kid is derived from it so
// that two doubles never share one. Close it when done.
func NewNRAS(opts ...Option) *NRAS {
	s := NewSigner("", opts...)
	pub, _ := s.Key.PublicKey.Bytes()
	d := sha256.Sum256(pub)
	s.Kid = "nv-eat-kid-test-double-" + hex.EncodeToString(d[:4])
	f := &NRAS{Signer: s}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(f.JWKS())
	})
	mux.HandleFunc("POST /v3/attest/gpu", f.attest)
	f.srv = httptest.NewServer(mux)
	return f
}

// URL is the double's attestation endpoint, for nvidia.NRAS.URL.
func (f *NRAS) URL() string { return f.srv.URL + "/v3/attest/gpu" }

// JWKSURL is where the double serves its JWKS.
func (f *NRAS) JWKSURL() string { return f.srv.URL + "/.well-known/jwks.json" }

// Client returns an NRAS client of the double.
func (f *NRAS) Client() *nvidia.NRAS { return &nvidia.NRAS{URL: f.URL()} }

// Close shuts the server down.
func (f *NRAS) Close() { f.srv.Close() }

// Fail makes every attest request answer status with body; status 0
// restores normal answers.
func (f *NRAS) Fail(status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.errBody = status, body
}

// Requests returns the attest requests received so far.
func (f *NRAS) Requests() []Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Request(nil), f.requests...)
}

func (f *NRAS) attest(w http.ResponseWriter, r *http.Request) {
	var req Request
	err := json.NewDecoder(r.Body).Decode(&req)
	req.Header = r.Header.Clone()
	f.mu.Lock()
	f.requests = append(f.requests, req)
	status, errBody := f.status, f.errBody
	f.mu.Unlock()
	if status != 0 && status != http.StatusOK {
		http.Error(w, errBody, status)
		return
	}
	nonce, herr := hex.DecodeString(req.Nonce)
	if err != nil || herr != nil || len(nonce) != 32 || len(req.EvidenceList) == 0 || (req.Arch != "HOPPER" && req.Arch != "BLACKWELL") {
		http.Error(w, `{"errorCode":400,"message":"invalid request"}`, http.StatusBadRequest)
		return
	}
	for _, ev := range req.EvidenceList {
		report, err1 := base64.StdEncoding.DecodeString(ev.Evidence)
		_, err2 := base64.StdEncoding.DecodeString(ev.Certificate)
		if err1 != nil || err2 != nil || !bytes.Contains(report, nonce) {
			http.Error(w, `{"errorCode":400,"message":"evidence does not carry the nonce"}`, http.StatusBadRequest)
			return
		}
	}
	e := f.Evidence([32]byte(nonce), len(req.EvidenceList), Edits{})
	detached := map[string]string{}
	for _, g := range e.GPUs {
		detached[g.Name] = g.Token
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode([]any{[]string{"JWT", e.Overall}, detached})
}

// Collector is an nvidia.Collector that stands in for NVML: GPUs GPUs of
// one architecture whose "reports" are the nonce behind a fixed prefix.
type Collector struct {
	GPUs int
	Arch string // "HOPPER" if empty
	Err  error  // if set, what Collect returns
}

// Collect returns made-up evidence for c.GPUs GPUs, or c.Err.
func (c Collector) Collect(nonce [32]byte) ([]nvidia.GPUEvidence, error) {
	if c.Err != nil {
		return nil, c.Err
	}
	arch := c.Arch
	if arch == "" {
		arch = "HOPPER"
	}
	var out []nvidia.GPUEvidence
	for i := range c.GPUs {
		out = append(out, nvidia.GPUEvidence{
			Arch:      arch,
			Report:    append([]byte(fmt.Sprintf("fake SPDM report of GPU %d:", i)), nonce[:]...),
			CertChain: []byte("-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n"),
		})
	}
	return out, nil
}

var _ nvidia.Collector = Collector{}
