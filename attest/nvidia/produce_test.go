package nvidia_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/nvidia"
	"github.com/cocoon-go/cocoon/attest/nvidia/nvidiatest"
	"github.com/cocoon-go/cocoon/attest/simulated"
)

func TestProducerEndToEnd(t *testing.T) {
	nras := nvidiatest.NewNRAS(atTestNow)
	defer nras.Close()
	p := &nvidia.Producer{
		Collector: nvidiatest.Collector{GPUs: 2, Arch: "HOPPER"},
		NRAS:      &nvidia.NRAS{URL: nras.URL(), Header: http.Header{"Authorization": {"nv-sak test-key"}}},
	}
	raw, err := p.ProduceGPU(testNonce)
	if err != nil {
		t.Fatalf("ProduceGPU: %v", err)
	}
	req := nras.Requests()[0]
	hdr := req.Header
	if req.Nonce != hex.EncodeToString(testNonce[:]) || req.Arch != "HOPPER" || len(req.EvidenceList) != 2 || req.ClaimsVersion != "" {
		t.Errorf("NRAS request = %+v", req)
	}
	if hdr.Get("Authorization") != "nv-sak test-key" || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("NRAS request headers = %v", hdr)
	}
	keys, err := nvidia.ParseJWKS(fetch(t, nras.JWKSURL()))
	if err != nil {
		t.Fatal(err)
	}
	g, err := nvidia.NewVerifier(keys).VerifyGPU(raw, testNonce, testNow.Add(time.Minute))
	if err != nil {
		t.Fatalf("VerifyGPU: %v", err)
	}
	if len(g.GPUs) != 2 {
		t.Errorf("GPUs = %+v", g.GPUs)
	}
	// The same evidence does not bind another bundle.
	_, err = nvidia.NewVerifier(keys).VerifyGPU(raw, [32]byte{1}, testNow)
	wantOnly(t, err, nvidia.ErrNonce)
}

func fetch(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return b.Bytes()
}

func TestNRASErrors(t *testing.T) {
	nras := nvidiatest.NewNRAS(atTestNow)
	defer nras.Close()
	c := &nvidia.NRAS{URL: nras.URL()}
	gpus, _ := nvidiatest.Collector{GPUs: 1, Arch: "HOPPER"}.Collect(testNonce)

	nras.Fail(http.StatusBadRequest, `{"errorCode":400,"message":"Invalid evidence: certificate chain"}`)
	_, err := c.Attest(t.Context(), testNonce, gpus)
	var ne *nvidia.NRASError
	if !errors.As(err, &ne) || ne.Status != 400 || ne.Message != "Invalid evidence: certificate chain" {
		t.Errorf("Attest = %v, want an NRASError with NRAS's message", err)
	}
	nras.Fail(http.StatusServiceUnavailable, "upstream down")
	if _, err := c.Attest(t.Context(), testNonce, gpus); !errors.As(err, &ne) || ne.Status != 503 || ne.Message != "upstream down" {
		t.Errorf("Attest = %v, want an NRASError with the text", err)
	}
	nras.Fail(0, "")

	mixed := append(gpus, nvidia.GPUEvidence{Arch: "BLACKWELL", Report: []byte{1}, CertChain: []byte{1}})
	if _, err := c.Attest(t.Context(), testNonce, mixed); err == nil || !strings.Contains(err.Error(), "one architecture") {
		t.Errorf("mixed architectures: %v", err)
	}
	if _, err := c.Attest(t.Context(), testNonce, nil); err == nil {
		t.Error("no GPUs: accepted")
	}
	// The double refuses reports that do not carry the nonce.
	if _, err := c.Attest(t.Context(), [32]byte{9}, gpus); !errors.As(err, &ne) || ne.Status != 400 {
		t.Errorf("wrong nonce: %v", err)
	}
	collectErr := errors.New("nvml: GPUs are not in confidential-computing mode")
	p := &nvidia.Producer{Collector: nvidiatest.Collector{Err: collectErr}, NRAS: c}
	if _, err := p.ProduceGPU(testNonce); !errors.Is(err, collectErr) {
		t.Errorf("ProduceGPU = %v, want the collector's error", err)
	}
}

func TestNRASLimits(t *testing.T) {
	huge := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte(" "), nvidia.MaxResponseSize+10))
	})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so the server notices when the client hangs up
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	gpus, _ := nvidiatest.Collector{GPUs: 1, Arch: "HOPPER"}.Collect(testNonce)
	for name, h := range map[string]http.Handler{"huge": huge, "slow": slow} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(h)
			defer srv.Close()
			c := &nvidia.NRAS{URL: srv.URL, Timeout: 100 * time.Millisecond}
			if _, err := c.Attest(t.Context(), testNonce, gpus); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// TestCheckerRequiresGPU runs GPU evidence through attest.Checker with a
// simulated CPU TEE and a policy that requires a GPU.
func TestCheckerRequiresGPU(t *testing.T) {
	nras := nvidiatest.NewNRAS(atTestNow)
	defer nras.Close()
	vendor, err := simulated.NewVendor(bytes.Repeat([]byte{0xa}, simulated.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	cpu := vendor.Device(simulated.Measurement, simulated.WithClock(func() time.Time { return testNow }))
	gpu := &nvidia.Producer{Collector: nvidiatest.Collector{GPUs: 2, Arch: "HOPPER"}, NRAS: &nvidia.NRAS{URL: nras.URL()}}
	checker := attest.NewChecker(attest.Policy{
		SimulatedMeasurements: [][32]byte{simulated.Measurement},
		MaxAge:                time.Hour,
		RequireGPU:            true,
	}, vendor.Verifier())
	checker.GPU = nvidia.NewVerifier(nras.Keys())
	checker.Now = func() time.Time { return testNow.Add(time.Minute) }

	b, other := testBundle(1), testBundle(2)

	// Without GPU evidence: refused by policy.
	e, err := attest.Attest(cpu, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = checker.Check(e.Marshal())
	var pe *attest.PolicyError
	if !errors.As(err, &pe) || pe.Rule != attest.RuleGPU {
		t.Errorf("without GPU evidence: %v, want a PolicyError for rule %q", err, attest.RuleGPU)
	}

	// With GPU evidence for the bundle: accepted, until the tokens expire.
	e, err = attest.Attest(cpu, b, gpu)
	if err != nil {
		t.Fatal(err)
	}
	v, err := checker.Check(e.Marshal())
	if err != nil {
		t.Fatalf("with GPU evidence: %v", err)
	}
	if g := v.Claims.GPU; g == nil || g.Kind != nvidia.Kind || len(g.GPUs) != 2 {
		t.Errorf("GPU claims = %+v", v.Claims.GPU)
	}
	if want := testNow.Add(nvidiatest.TokenLife); !v.Expires.Equal(want) {
		t.Errorf("Expires = %v, want the tokens' expiry %v", v.Expires, want)
	}

	// GPU evidence spliced in by whoever relays the evidence, for the
	// right (public) bundle hash but not produced with the CPU report:
	// refused, as is evidence whose GPU part was stripped.
	bare, err := attest.Attest(cpu, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	spliced := *bare
	spliced.GPU = e.GPU
	if _, err = checker.Check(spliced.Marshal()); !errors.Is(err, attest.ErrReportData) {
		t.Errorf("spliced GPU evidence: %v, want ErrReportData", err)
	}
	stripped := *e
	stripped.GPU = nil
	if _, err = checker.Check(stripped.Marshal()); !errors.Is(err, attest.ErrReportData) {
		t.Errorf("stripped GPU evidence: %v, want ErrReportData", err)
	}

	// GPU evidence made for another bundle, even when the CPU report binds
	// it: refused by its nonce.
	e, err = attest.Attest(cpu, b, otherNonce{gpu, other.Hash()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = checker.Check(e.Marshal())
	if !errors.Is(err, nvidia.ErrNonce) || !errors.Is(err, attest.ErrGPU) || errors.Is(err, attest.ErrPolicy) {
		t.Errorf("GPU evidence of another bundle: %v, want ErrNonce", err)
	}
}

// otherNonce is a GPU producer that attests with a fixed nonce, whatever
// it is asked for: a producer bound to the wrong bundle.
type otherNonce struct {
	p     attest.GPUProducer
	nonce [32]byte
}

func (o otherNonce) ProduceGPU([32]byte) ([]byte, error) { return o.p.ProduceGPU(o.nonce) }

// testBundle returns a valid key bundle, distinct for each seed, valid from
// an hour before testNow for a day.
func testBundle(seed byte) *attest.Bundle {
	signing := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	return &attest.Bundle{
		HPKEKey:    append([]byte{0x00, 0x20}, bytes.Repeat([]byte{seed}, 32)...),
		SigningKey: signing.Public().(ed25519.PublicKey),
		TLSKeyHash: [32]byte{seed},
		Models:     []attest.Model{{Name: "qwen3-8b", Hash: strings.Repeat("b2", 32)}},
		Created:    testNow.Add(-time.Hour).Unix(),
		Expires:    testNow.Add(23 * time.Hour).Unix(),
		Config:     attest.RuntimeConfig{Engine: attest.EngineEmbedded, KEM: 0x0020},
	}
}
