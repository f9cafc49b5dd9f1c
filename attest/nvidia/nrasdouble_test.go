package nvidia_test

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

// testNow is the pinned clock of these tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// tokenLife is how long the double's tokens are valid, as NRAS's are.
const tokenLife = time.Hour

// signer makes NRAS-shaped tokens with a test-only P-384 key. It is the
// signing half of fakeNRAS, usable without a server.
type signer struct {
	key *ecdsa.PrivateKey
	kid string
	iss string
	now time.Time
}

func newSigner(kid string, now time.Time) *signer {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return &signer{key: key, kid: kid, iss: nvidia.DefaultIssuer, now: now}
}

// jwks returns the signer's public key as NRAS publishes its keys: x, y and
// an x5c certificate for the same key.
func (s *signer) jwks() []byte {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "Test double of NVIDIA Attestation Service"},
		NotBefore:    s.now.Add(-time.Hour),
		NotAfter:     s.now.Add(48 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &s.key.PublicKey, s.key)
	if err != nil {
		panic(err)
	}
	point, err := s.key.PublicKey.Bytes() // 0x04 ‖ x ‖ y
	if err != nil {
		panic(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	set := map[string]any{"keys": []map[string]any{{
		"kty": "EC", "crv": "P-384", "kid": s.kid,
		"x": b64(point[1:49]), "y": b64(point[49:]),
		"x5c": []string{base64.StdEncoding.EncodeToString(der)},
	}}}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err)
	}
	return b
}

func (s *signer) keys() *nvidia.KeySet {
	ks, err := nvidia.ParseJWKS(s.jwks())
	if err != nil {
		panic(err)
	}
	return ks
}

// sign signs claims with ES384 under the signer's kid.
func (s *signer) sign(claims jwt.MapClaims) string {
	t := jwt.NewWithClaims(jwt.SigningMethodES384, claims)
	t.Header["kid"] = s.kid
	delete(t.Header, "typ") // NRAS's header is {"kid", "alg"} only
	raw, err := t.SignedString(s.key)
	if err != nil {
		panic(err)
	}
	return raw
}

func (s *signer) registered(nonce string) jwt.MapClaims {
	return jwt.MapClaims{
		"iss":       s.iss,
		"iat":       s.now.Unix(),
		"nbf":       s.now.Unix(),
		"exp":       s.now.Add(tokenLife).Unix(),
		"jti":       "test-jti",
		"eat_nonce": nonce,
	}
}

// gpuClaims are the claims of a healthy H100 in CC mode, as NRAS's claims
// version 2.0 reports them (see testdata/nras-response-h100.json).
func (s *signer) gpuClaims(nonce string, i int) jwt.MapClaims {
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

// overallClaims lists the digest of each detached token under its name.
func (s *signer) overallClaims(nonce string, detached map[string]string) jwt.MapClaims {
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

// edits alter a token set as it is made; nil fields change nothing.
type edits struct {
	gpu     func(name string, c jwt.MapClaims) // before a detached token is signed
	overall func(c jwt.MapClaims)              // before the overall token is signed
}

// evidence returns a token set for n GPUs with nonce, as NRAS would issue it.
func (s *signer) evidence(nonce [32]byte, n int, ed edits) *nvidia.Evidence {
	h := hex.EncodeToString(nonce[:])
	detached := map[string]string{}
	for i := range n {
		name := fmt.Sprintf("GPU-%d", i)
		c := s.gpuClaims(h, i)
		if ed.gpu != nil {
			ed.gpu(name, c)
		}
		detached[name] = s.sign(c)
	}
	oc := s.overallClaims(h, detached)
	if ed.overall != nil {
		ed.overall(oc)
	}
	e := &nvidia.Evidence{Overall: s.sign(oc)}
	for name, tok := range detached {
		e.GPUs = append(e.GPUs, nvidia.Detached{Name: name, Token: tok})
	}
	sort.Slice(e.GPUs, func(i, j int) bool { return e.GPUs[i].Name < e.GPUs[j].Name })
	return e
}

// fakeNRAS is a test double of NVIDIA's Remote Attestation Service: an
// httptest server answering POST /v3/attest/gpu with tokens signed by a
// test-only key, and serving that key at /.well-known/jwks.json. It checks
// the shape of requests, not the GPU evidence, which it only requires to
// carry the nonce (as fakeCollector's reports do).
type fakeNRAS struct {
	*signer
	srv *httptest.Server

	mu       sync.Mutex
	status   int    // when not 0 or 200, the status of every attest response
	errBody  string // its body
	requests []nrasRequest
	headers  []http.Header
}

// nrasRequest is the body NRAS's API takes.
type nrasRequest struct {
	Nonce         string `json:"nonce"`
	Arch          string `json:"arch"`
	ClaimsVersion string `json:"claims_version"`
	EvidenceList  []struct {
		Certificate string `json:"certificate"`
		Evidence    string `json:"evidence"`
	} `json:"evidence_list"`
}

func newFakeNRAS(now time.Time) *fakeNRAS {
	f := &fakeNRAS{signer: newSigner("nv-eat-kid-test-double", now)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(f.jwks())
	})
	mux.HandleFunc("POST /v3/attest/gpu", f.attest)
	f.srv = httptest.NewServer(mux)
	return f
}

// fail makes every attest request answer status with body; status 0 restores
// normal answers.
func (f *fakeNRAS) fail(status int, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.errBody = status, body
}

// request returns the i-th attest request received and its headers.
func (f *fakeNRAS) request(i int) (nrasRequest, http.Header) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[i], f.headers[i]
}

// URL is the double's attestation endpoint.
func (f *fakeNRAS) URL() string { return f.srv.URL + "/v3/attest/gpu" }

func (f *fakeNRAS) Close() { f.srv.Close() }

func (f *fakeNRAS) attest(w http.ResponseWriter, r *http.Request) {
	var req nrasRequest
	err := json.NewDecoder(r.Body).Decode(&req)
	f.mu.Lock()
	f.requests = append(f.requests, req)
	f.headers = append(f.headers, r.Header.Clone())
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
	e := f.evidence([32]byte(nonce), len(req.EvidenceList), edits{})
	detached := map[string]string{}
	for _, g := range e.GPUs {
		detached[g.Name] = g.Token
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode([]any{[]string{"JWT", e.Overall}, detached})
}

// fakeCollector stands in for NVML: n GPUs of one architecture whose
// "reports" are the nonce behind a fixed prefix.
type fakeCollector struct {
	n    int
	arch string
	err  error
}

func (c fakeCollector) Collect(nonce [32]byte) ([]nvidia.GPUEvidence, error) {
	if c.err != nil {
		return nil, c.err
	}
	var out []nvidia.GPUEvidence
	for i := range c.n {
		out = append(out, nvidia.GPUEvidence{
			Arch:      c.arch,
			Report:    append([]byte(fmt.Sprintf("fake SPDM report of GPU %d:", i)), nonce[:]...),
			CertChain: []byte("-----BEGIN CERTIFICATE-----\nZmFrZQ==\n-----END CERTIFICATE-----\n"),
		})
	}
	return out, nil
}
