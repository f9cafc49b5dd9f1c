package nvidia

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cocoon-go/cocoon/attest"
)

// GPUEvidence is what one GPU in confidential-computing mode gives for a
// nonce, in the form NRAS reads it.
type GPUEvidence struct {
	// Arch is the GPU's architecture as NRAS names it: "HOPPER" or "BLACKWELL".
	Arch string
	// Report is the signed attestation report carrying the nonce, as NVML's
	// nvmlDeviceGetConfComputeGpuAttestationReport returns it.
	Report []byte
	// CertChain is the GPU's attestation certificate chain (PEM), as NVML's
	// nvmlDeviceGetConfComputeGpuCertificate returns it.
	CertChain []byte
}

// Collector gathers evidence from every GPU of a machine for a nonce. The
// NVML-backed one (build tag nvml) refuses unless the GPUs are in
// confidential-computing mode.
type Collector interface {
	Collect(nonce [32]byte) ([]GPUEvidence, error)
}

// DefaultNRASURL is NRAS's endpoint for attesting GPUs.
const DefaultNRASURL = "https://nras.attestation.nvidia.com/v3/attest/gpu"

// MaxResponseSize bounds the NRAS response body read.
const MaxResponseSize = 1 << 20

// NRAS is a client of NVIDIA's Remote Attestation Service: it sends GPU
// evidence and returns NRAS's signed verdict as [Evidence].
type NRAS struct {
	// URL is the attestation endpoint; empty means DefaultNRASURL.
	URL string
	// HTTP is the client used; nil means http.DefaultClient.
	HTTP *http.Client
	// Timeout bounds one attestation; zero means 30 seconds.
	Timeout time.Duration
	// Header is added to each request, for example an API key.
	Header http.Header
	// ClaimsVersion asks NRAS for a claims version ("2.0", "3.0"); empty
	// leaves NRAS's default. The verifier accepts both.
	ClaimsVersion string
}

// NRASError is a response from NRAS other than 200 OK.
type NRASError struct {
	Status  int    // the HTTP status code
	Message string // what NRAS said, from its JSON error body or its text
}

func (e *NRASError) Error() string {
	return fmt.Sprintf("nvidia: NRAS refused the evidence: HTTP %d: %s", e.Status, e.Message)
}

type nrasRequest struct {
	Nonce         string         `json:"nonce"`
	Arch          string         `json:"arch"`
	EvidenceList  []nrasEvidence `json:"evidence_list"`
	ClaimsVersion string         `json:"claims_version,omitempty"`
}

type nrasEvidence struct {
	Certificate string `json:"certificate"` // base64 of the PEM chain
	Evidence    string `json:"evidence"`    // base64 of the report
}

// Attest asks NRAS to verify gpus, evidence collected for nonce, and
// returns its tokens. Every GPU must be of the same architecture, as NRAS
// takes one per request.
func (c *NRAS) Attest(ctx context.Context, nonce [32]byte, gpus []GPUEvidence) (*Evidence, error) {
	if len(gpus) == 0 {
		return nil, errors.New("nvidia: no GPU evidence to attest")
	}
	req := nrasRequest{Nonce: hex.EncodeToString(nonce[:]), Arch: gpus[0].Arch, ClaimsVersion: c.ClaimsVersion}
	for i, g := range gpus {
		if g.Arch != req.Arch {
			return nil, fmt.Errorf("nvidia: GPU %d is %s, GPU 0 %s: NRAS attests one architecture at a time", i, g.Arch, req.Arch)
		}
		if len(g.Report) == 0 || len(g.CertChain) == 0 {
			return nil, fmt.Errorf("nvidia: GPU %d gave no attestation report or certificate chain", i)
		}
		req.EvidenceList = append(req.EvidenceList, nrasEvidence{
			Certificate: base64.StdEncoding.EncodeToString(g.CertChain),
			Evidence:    base64.StdEncoding.EncodeToString(g.Report),
		})
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := c.URL
	if url == "" {
		url = DefaultNRASURL
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("nvidia: NRAS request: %w", err)
	}
	for k, vs := range c.Header {
		for _, v := range vs {
			hreq.Header.Add(k, v)
		}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("nvidia: NRAS at %s: %w", url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return nil, fmt.Errorf("nvidia: NRAS at %s: reading response: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &NRASError{Status: resp.StatusCode, Message: nrasMessage(data)}
	}
	if len(data) > MaxResponseSize {
		return nil, fmt.Errorf("nvidia: NRAS at %s: response over %d bytes", url, MaxResponseSize)
	}
	e, err := ParseNRASResponse(data)
	if err != nil {
		return nil, fmt.Errorf("nvidia: NRAS at %s: %w", url, err)
	}
	if len(e.GPUs) != len(gpus) {
		return nil, fmt.Errorf("nvidia: NRAS at %s returned %d GPU tokens for %d GPUs", url, len(e.GPUs), len(gpus))
	}
	return e, nil
}

// nrasMessage extracts the message of an NRAS error body: a JSON object
// with a message-like field, or else its text, shortened.
func nrasMessage(body []byte) string {
	var obj map[string]any
	if json.Unmarshal(body, &obj) == nil {
		for _, k := range []string{"message", "errorMessage", "error_message", "error", "detail", "description"} {
			if s, ok := obj[k].(string); ok && s != "" {
				return shorten(s)
			}
		}
	}
	if s := strings.TrimSpace(string(body)); s != "" {
		return shorten(s)
	}
	return "(empty body)"
}

func shorten(s string) string {
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}

// Producer makes GPU evidence as an attest.GPUProducer: it collects every
// GPU's report for the nonce (the key bundle's hash) and has NRAS verify it.
type Producer struct {
	Collector Collector
	NRAS      *NRAS // nil means an NRAS client with the defaults
}

var _ attest.GPUProducer = (*Producer)(nil)

// ProduceGPU returns the wire form of NRAS's tokens for the GPUs'
// evidence with nonce, for attest.Evidence.GPU.
func (p *Producer) ProduceGPU(nonce [32]byte) ([]byte, error) {
	gpus, err := p.Collector.Collect(nonce)
	if err != nil {
		return nil, fmt.Errorf("nvidia: collect GPU evidence: %w", err)
	}
	c := p.NRAS
	if c == nil {
		c = &NRAS{}
	}
	e, err := c.Attest(context.Background(), nonce, gpus)
	if err != nil {
		return nil, err
	}
	return e.Marshal(), nil
}
