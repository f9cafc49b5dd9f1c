package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/simulated"
	"github.com/cocoon-go/cocoon/node"
	"github.com/cocoon-go/cocoon/price"
)

// The real TDX quote and its Intel PCS collateral of January 2026.
const (
	realQuoteDir   = "../../attest/tdx/testdata/tdx-2026-01"
	realQuote      = realQuoteDir + "/quote.bin"
	realCollateral = realQuoteDir + "/collateral"
	realQuoteAt    = "2026-01-20T00:00:00Z"
	realImageHash  = "ee00dab77525aaede670f773b7ba3ed51143fd5aacbdf711e55e1c74658ef8d5"
)

// TestAttestVerifyRealQuote runs `cocoon attest verify` on the real quote:
// accepted at the collateral's date, refused today, with a flipped byte, and
// with a measurement that is not its own, each refusal naming its step.
func TestAttestVerifyRealQuote(t *testing.T) {
	verify := []string{"attest", "verify", "--tdx-quote", realQuote, "--collateral", realCollateral}
	pinned := append(verify[:len(verify):len(verify)], "--at", realQuoteAt)

	out, errs, err := cocoon(pinned...)
	if err != nil {
		t.Fatalf("verify at %s: %v\n%s%s", realQuoteAt, err, out, errs)
	}
	for _, want := range []string{"image hash:              " + realImageHash, "ACCEPTED", "UpToDate", "measurement NOT checked", "MRTD:", "RTMR3:", "MROWNERCONFIG:"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}

	v := must(t, append(pinned, "--allow-measurement", realImageHash)...)
	if v["image_hash"] != realImageHash || v["verdict"] != "accepted" || v["tcb_status"] != "UpToDate" {
		t.Errorf("verify --json = %v", v)
	}
	if m, _ := v["measurements"].(map[string]any); m == nil || len(m["mrtd"].(string)) != 96 {
		t.Errorf("verify --json measurements = %v", v["measurements"])
	}
	rd := v["report_data"].(string)
	must(t, append(pinned, "--report-data", rd)...)
	refused(t, "refused at step policy", append(pinned, "--report-data", strings.Repeat("00", 64))...)

	refused(t, "refused at step collateral", verify...)
	refused(t, "expired", verify...)

	raw, err := os.ReadFile(realQuote)
	if err != nil {
		t.Fatal(err)
	}
	raw[48+200] ^= 1 // inside the TD report body
	flipped := filepath.Join(t.TempDir(), "quote.bin")
	if err := os.WriteFile(flipped, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	refused(t, "refused at step signature", "attest", "verify", "--tdx-quote", flipped, "--collateral", realCollateral, "--at", realQuoteAt)

	other := strings.Repeat("ab", 32)
	refused(t, "refused at step policy", append(pinned, "--allow-measurement", other)...)
	refused(t, "image hash "+realImageHash+" is not allowed", append(pinned, "--allow-measurement", other)...)

	refused(t, "refused at step parse", "attest", "verify", "--tdx-quote", realCollateral+"/root_ca.crl", "--collateral", realCollateral, "--at", realQuoteAt)

	// The same with a policy file: its measurements and its collateral.
	policy := func(trust node.Trust) string {
		p := filepath.Join(t.TempDir(), "trust.json")
		data, _ := json.Marshal(trust)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	withPolicy := func(p string) []string {
		return []string{"attest", "verify", "--tdx-quote", realQuote, "--policy", p, "--at", realQuoteAt}
	}
	v = must(t, withPolicy(policy(node.Trust{TDX: &node.TDXTrust{Collateral: realCollateral}, Measurements: []string{realImageHash}}))...)
	if v["verdict"] != "accepted" || !strings.Contains(v["policy"].(string), "measurement allowed") {
		t.Errorf("verify --policy = %v", v)
	}
	refused(t, "is not allowed", withPolicy(policy(node.Trust{TDX: &node.TDXTrust{Collateral: realCollateral}, Measurements: []string{other}}))...)
	refused(t, "needs --collateral DIR", withPolicy(policy(node.Trust{Measurements: []string{realImageHash}}))...)
}

// TestAttestMeasure checks that `cocoon attest measure` prints the image hash
// verify reports, from the quote and from its register values.
func TestAttestMeasure(t *testing.T) {
	out, errs, err := cocoon("attest", "measure", "--tdx-quote", realQuote)
	if err != nil {
		t.Fatalf("measure: %v\n%s", err, errs)
	}
	if !strings.Contains(out, "cocoon root allow-measurement "+realImageHash) {
		t.Errorf("measure printed:\n%s", out)
	}
	v := must(t, "attest", "measure", "--tdx-quote", realQuote)
	if v["image_hash"] != realImageHash {
		t.Fatalf("measure --json = %v", v)
	}
	m := v["measurements"].(map[string]any)
	rtmr := m["rtmr"].([]any)
	args := []string{"attest", "measure", "--mrtd", m["mrtd"].(string)}
	for i, r := range rtmr {
		args = append(args, "--rtmr"+string(rune('0'+i)), r.(string))
	}
	if v := must(t, args...); v["image_hash"] != realImageHash {
		t.Errorf("measure from register values = %v, want %s", v["image_hash"], realImageHash)
	}
	refused(t, "--rtmr0", "attest", "measure", "--mrtd", m["mrtd"].(string))
}

// TestAttestShow runs `cocoon attest show`; on a machine without a TEE it
// must say so plainly.
func TestAttestShow(t *testing.T) {
	out, errs, err := cocoon("attest", "show")
	if err != nil {
		t.Fatalf("show: %v\n%s", err, errs)
	}
	if !strings.Contains(out, "/dev/tdx_guest") {
		t.Errorf("show printed:\n%s", out)
	}
	noTEE := true
	for _, p := range []string{"/sys/kernel/config/tsm/report", "/dev/tdx_guest", "/dev/sev-guest"} {
		if _, err := os.Stat(p); err == nil {
			noTEE = false
		}
	}
	if !noTEE {
		return
	}
	if !strings.Contains(out, "no TEE evidence can be produced here; workers need --simulated-tee for development") {
		t.Errorf("show on a machine without a TEE printed:\n%s", out)
	}
	// And a worker told nothing refuses to start, saying why and what to do.
	refused(t, "worker: no TEE", "worker", "--proxy", "127.0.0.1:1", "--data-dir", t.TempDir())
	refused(t, "run with --simulated-tee DIR for development", "worker", "--proxy", "127.0.0.1:1", "--data-dir", t.TempDir())
}

// The real SEV-SNP sample shipped by go-sev-guest (Milan, guest policy
// allowing debugging) and its VCEK.
const (
	snpReport = "../../attest/snp/testdata/attestation.bin"
	snpVCEK   = "../../attest/snp/testdata/vcek.der"
)

// TestAttestVerifySNPReport runs `cocoon attest verify --snp-report` on the
// real sample: its signature and chain verify, and the policy refuses it
// for allowing debugging; without its VCEK, or with a flipped byte, it is
// refused at the signature step.
func TestAttestVerifySNPReport(t *testing.T) {
	verify := []string{"attest", "verify", "--snp-report", snpReport, "--vcek", snpVCEK}
	out, _, err := cocoon(verify...)
	if err == nil {
		t.Fatalf("a report allowing debugging was accepted:\n%s", out)
	}
	for _, want := range []string{"MEASUREMENT:", "reported TCB:", "debug:                   true", "REFUSED at step policy", "debug"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	refused(t, "refused at step policy", verify...)
	refused(t, "refused at step signature", "attest", "verify", "--snp-report", snpReport)

	raw, err := os.ReadFile(snpReport)
	if err != nil {
		t.Fatal(err)
	}
	raw[0x90] ^= 1 // inside MEASUREMENT
	flipped := filepath.Join(t.TempDir(), "report.bin")
	if err := os.WriteFile(flipped, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	refused(t, "refused at step signature", "attest", "verify", "--snp-report", flipped, "--vcek", snpVCEK)
	refused(t, "refused at step parse", "attest", "verify", "--snp-report", snpVCEK)
	refused(t, "give one of", "attest", "verify", "--snp-report", snpReport, "--tdx-quote", realQuote)
}

// TestAttestVerifyBundle runs `cocoon attest verify --bundle` on a worker's
// evidence as a worker writes it, against policy files: accepted with the
// right one, and refused, each at its own step, for an untrusted kind, an
// unknown measurement, an unknown model, stale evidence, and an expired
// bundle.
func TestAttestVerifyBundle(t *testing.T) {
	dir := t.TempDir()
	vendor, err := simulated.LoadVendor(filepath.Join(dir, "vendor"))
	if err != nil {
		t.Fatal(err)
	}
	rootPEM := filepath.Join(dir, "vendor-root.pem")
	if err := os.WriteFile(rootPEM, vendor.RootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	b := &attest.Bundle{
		HPKEKey:    []byte{0, 0x20, 1, 2, 3},
		SigningKey: make([]byte, 32),
		Models:     []attest.Model{{Name: "cocoon-tiny", Hash: strings.Repeat("0a", 32)}},
		Created:    created.Unix(),
		Expires:    created.Add(24 * time.Hour).Unix(),
		Config:     attest.RuntimeConfig{Engine: "http://127.0.0.1:8000/v1", KEM: 0x0020, Price: price.Default},
	}
	dev := vendor.Device(simulated.Measurement, simulated.WithClock(func() time.Time { return created }))
	ev, err := attest.Attest(dev, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "evidence.bin")
	if err := os.WriteFile(bundle, ev.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	meas := hex.EncodeToString(simulated.Measurement[:])
	policy := func(name string, trust node.Trust) string {
		p := filepath.Join(dir, name+".json")
		data, _ := json.Marshal(trust)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := policy("good", node.Trust{SimulatedRoots: []string{rootPEM}, SimulatedMeasurements: []string{meas}, Models: []string{strings.Repeat("0a", 32)}})
	at := created.Add(time.Hour).Format(time.RFC3339)
	verify := func(policy, at string) []string {
		return []string{"attest", "verify", "--bundle", bundle, "--policy", policy, "--at", at}
	}

	v := must(t, verify(good, at)...)
	id := b.Hash()
	if v["verdict"] != "accepted" || v["kind"] != "simulated" || v["image_hash"] != meas {
		t.Errorf("verify --bundle --json = %v", v)
	}
	if bj, _ := v["bundle"].(map[string]any); bj == nil || bj["key_id"] != hex.EncodeToString(id[:]) {
		t.Errorf("verify --bundle --json bundle = %v", v["bundle"])
	}

	// The runtime configuration is shown, with the digest to allow-list,
	// and a policy listing another digest refuses the bundle.
	cd := b.ConfigDigest()
	if bj, _ := v["bundle"].(map[string]any); bj == nil || bj["engine"] != "http://127.0.0.1:8000/v1" || bj["engine_on_worker_machine"] != true || bj["config_digest"] != hex.EncodeToString(cd[:]) {
		t.Errorf("verify --bundle --json shows no runtime configuration: %v", v["bundle"])
	}
	listed := policy("listed-config", node.Trust{SimulatedRoots: []string{rootPEM}, SimulatedMeasurements: []string{meas}, ConfigDigests: []string{hex.EncodeToString(cd[:])}})
	if v := must(t, verify(listed, at)...); v["verdict"] != "accepted" {
		t.Errorf("listed config digest: %v", v)
	}
	unlisted := policy("unlisted-config", node.Trust{SimulatedRoots: []string{rootPEM}, SimulatedMeasurements: []string{meas}, ConfigDigests: []string{strings.Repeat("cd", 32)}})
	refused(t, "(config)", verify(unlisted, at)...)
	human, errs, err := cocoon(verify(good, at)...)
	if err != nil {
		t.Fatalf("verify --bundle: %v\n%s", err, errs)
	}
	if !strings.Contains(human, "http://127.0.0.1:8000/v1 (on the worker's machine)") || !strings.Contains(human, hex.EncodeToString(cd[:])) {
		t.Errorf("verify --bundle shows no runtime configuration:\n%s", human)
	}

	tdxOnly := policy("tdx-only", node.Trust{TDX: &node.TDXTrust{Collateral: realCollateral}, Measurements: []string{meas}})
	refused(t, "refused at step kind", verify(tdxOnly, at)...)
	refused(t, "no simulated verifier configured", verify(tdxOnly, at)...)
	otherMeas := policy("other-measurement", node.Trust{SimulatedRoots: []string{rootPEM}, SimulatedMeasurements: []string{strings.Repeat("ab", 32)}})
	refused(t, "refused at step policy", verify(otherMeas, at)...)
	refused(t, "(measurement)", verify(otherMeas, at)...)
	otherModel := policy("other-model", node.Trust{SimulatedRoots: []string{rootPEM}, SimulatedMeasurements: []string{meas}, Models: []string{strings.Repeat("0b", 32)}})
	refused(t, "(model)", verify(otherModel, at)...)
	shortAge := policy("short-age", node.Trust{SimulatedRoots: []string{rootPEM}, SimulatedMeasurements: []string{meas}, MaxAge: "30m"})
	refused(t, "(freshness)", verify(shortAge, at)...)
	refused(t, "refused at step validity", verify(good, created.Add(25*time.Hour).Format(time.RFC3339))...)

	// Evidence from a TEE in debug mode, and a report bound to another
	// bundle than the one it comes with.
	write := func(name string, e *attest.Evidence) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, e.Marshal(), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	debugDev := vendor.Device(simulated.Measurement, simulated.WithDebug(), simulated.WithClock(func() time.Time { return created }))
	debugEv, err := attest.Attest(debugDev, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	refused(t, "(debug)", "attest", "verify", "--bundle", write("debug.bin", debugEv), "--policy", good, "--at", at)
	other := *b
	other.Expires++
	swapped := *ev
	swapped.Bundle = other.Marshal()
	refused(t, "refused at step binding", "attest", "verify", "--bundle", write("swapped.bin", &swapped), "--policy", good, "--at", at)

	// A policy demanding a confidential-computing GPU refuses a bundle
	// without GPU evidence.
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	jwks := fmt.Sprintf(`{"keys":[{"kty":"EC","crv":"P-384","kid":"test-key","alg":"ES384","x":%q,"y":%q}]}`, b64(key.X.FillBytes(make([]byte, 48))), b64(key.Y.FillBytes(make([]byte, 48))))
	keysFile := filepath.Join(dir, "nras-test-keys.json")
	if err := os.WriteFile(keysFile, []byte(jwks), 0o600); err != nil {
		t.Fatal(err)
	}
	gpu := policy("gpu", node.Trust{SimulatedRoots: []string{rootPEM}, SimulatedMeasurements: []string{meas}, RequireGPU: true, GPU: &node.GPUTrust{NRASKeys: keysFile}})
	refused(t, "(gpu)", verify(gpu, at)...)
	refused(t, "require_gpu needs gpu.nras_keys", verify(policy("gpu-no-keys", node.Trust{SimulatedRoots: []string{rootPEM}, SimulatedMeasurements: []string{meas}, RequireGPU: true}), at)...)
}

// TestAttestMeasureSNP checks that `cocoon attest measure` gives an SEV-SNP
// report's image hash, the one verify reports, from the report and from its
// launch measurement.
func TestAttestMeasureSNP(t *testing.T) {
	v := must(t, "attest", "measure", "--snp-report", snpReport)
	out, _, _ := cocoon("attest", "verify", "--snp-report", snpReport, "--vcek", snpVCEK, "--json")
	var verdict map[string]any
	if err := json.Unmarshal([]byte(out), &verdict); err != nil {
		t.Fatalf("verify --json: %v\n%s", err, out)
	}
	if v["image_hash"] != verdict["image_hash"] || len(v["image_hash"].(string)) != 64 {
		t.Errorf("measure gives %v, verify %v", v["image_hash"], verdict["image_hash"])
	}
	if w := must(t, "attest", "measure", "--snp-measurement", v["measurement"].(string)); w["image_hash"] != v["image_hash"] {
		t.Errorf("measure from the measurement = %v, from the report %v", w["image_hash"], v["image_hash"])
	}
	refused(t, "96 hex digits", "attest", "measure", "--snp-measurement", "abcd")
	refused(t, "give one of", "attest", "measure", "--snp-report", snpReport, "--tdx-quote", realQuote)
}

// TestAttestCollateral saves the collateral of the real quote, fetched from
// a directory standing in for Intel PCS, as a directory and a snapshot, and
// verifies the quote against the saved directory.
func TestAttestCollateral(t *testing.T) {
	dir := t.TempDir()
	out, snap := filepath.Join(dir, "collateral"), filepath.Join(dir, "snapshot.bin")
	stdout, errs, err := cocoon("attest", "collateral", "--tdx-quote", realQuote, "--from", realCollateral, "--out", out, "--snapshot", snap, "--cache-dir", dir)
	if err != nil {
		t.Fatalf("attest collateral: %v\n%s", err, errs)
	}
	if !strings.Contains(stdout, "saved 4 responses in "+out) || !strings.Contains(stdout, "snapshot in "+snap) {
		t.Errorf("attest collateral printed:\n%s", stdout)
	}
	if fi, err := os.Stat(snap); err != nil || fi.Size() == 0 {
		t.Fatalf("snapshot: %v", err)
	}
	v := must(t, "attest", "verify", "--tdx-quote", realQuote, "--collateral", out, "--at", realQuoteAt)
	if v["verdict"] != "accepted" {
		t.Errorf("verify against the saved collateral = %v", v)
	}
	refused(t, "--out DIR or --snapshot FILE", "attest", "collateral", "--tdx-quote", realQuote)
}

// TestWorkerGPUNeedsNVML checks that asking the default build for GPU
// evidence says how to get a binary that can produce it.
func TestWorkerGPUNeedsNVML(t *testing.T) {
	dir := t.TempDir()
	refused(t, "built without NVML; rebuild it on the GPU machine with `go build -tags nvml ./cmd/cocoon`",
		"worker", "--proxy", "127.0.0.1:1", "--data-dir", dir, "--simulated-tee", filepath.Join(dir, "tee"), "--gpu", "nvml")
	refused(t, `gpu "cuda": want "nvml"`, "worker", "--proxy", "127.0.0.1:1", "--data-dir", dir, "--simulated-tee", filepath.Join(dir, "tee"), "--gpu", "cuda")
}
