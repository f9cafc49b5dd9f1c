package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	if noTEE && !strings.Contains(out, "no TEE evidence can be produced here; workers need --simulated-tee for development") {
		t.Errorf("show on a machine without a TEE printed:\n%s", out)
	}
}
