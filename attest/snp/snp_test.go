package snp_test

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/verify/trust"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/snp"
)

// inValidity lies inside the sample VCEK's validity (2022-09-24 to 2029-09-24).
var inValidity = time.Date(2026, time.January, 20, 0, 0, 0, 0, time.UTC)

// sampleTCB is the sample report's (Milan, 2022) TCB, below today's default
// minimum: tests of other steps pass it explicitly.
var sampleTCB = func() kds.TCBVersion {
	v, err := kds.ComposeTCBParts(kds.TCBParts{BlSpl: 2, TeeSpl: 0, SnpSpl: 5, UcodeSpl: 68})
	if err != nil {
		panic(err)
	}
	return v
}()

// TestSNPRefusesOldTCBByDefault: the default verifier applies a minimum TCB
// (DefaultMinTCB of the report's product line), so the 2022 sample, signed
// by a genuine VCEK for that old firmware, is refused until a lower minimum
// is configured explicitly.
func TestSNPRefusesOldTCBByDefault(t *testing.T) {
	raw, vcek := sample(t)
	var pe *attest.PolicyError
	_, err := snp.NewVerifier(nil).Verify(withCertTable(raw, vcek), inValidity)
	if !errors.As(err, &pe) || pe.Rule != snp.RuleTCB {
		t.Fatalf("sample at the default minimum: err = %v, want a %q policy error", err, snp.RuleTCB)
	}
	if !strings.Contains(err.Error(), "bl=3 tee=0 snp=20 ucode=209") {
		t.Errorf("refusal %q does not name the Milan minimum", err)
	}
	if _, err := snp.NewVerifier(nil).WithMinTCB(sampleTCB).Verify(withCertTable(raw, vcek), inValidity); err != nil {
		t.Fatalf("sample with its own TCB as the minimum: %v", err)
	}
	if _, ok := snp.DefaultMinTCB("Genoa"); ok {
		t.Error("a default minimum for Genoa: none is known here, so none must be guessed")
	}
}

func sample(t *testing.T) (report, vcek []byte) {
	t.Helper()
	report, err := os.ReadFile("testdata/attestation.bin")
	if err != nil {
		t.Fatal(err)
	}
	vcek, err = os.ReadFile("testdata/vcek.der")
	if err != nil {
		t.Fatal(err)
	}
	return report, vcek
}

// withCertTable returns the report followed by a certificate table holding
// vcek, as an extended report comes from the kernel.
func withCertTable(report, vcek []byte) []byte {
	table := abi.CertsFromProto(&spb.CertificateChain{VcekCert: vcek}).Marshal()
	return append(append([]byte(nil), report...), table...)
}

func TestSampleVerifies(t *testing.T) {
	raw, vcek := sample(t)
	r, err := snp.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 2 || r.Signer != abi.VcekReportSigner || !r.Debug() || r.MigrationAgent() {
		t.Fatalf("parsed version %d signer %v debug %v migration agent %v", r.Version, r.Signer, r.Debug(), r.MigrationAgent())
	}
	if err := snp.VerifySignature(r, vcek, nil, inValidity); err != nil {
		t.Fatalf("VerifySignature: %v", err)
	}
	if err := snp.VerifySignature(r, nil, nil, inValidity); !errors.Is(err, attest.ErrChain) {
		t.Fatalf("VerifySignature without a VCEK = %v, want ErrChain", err)
	}
}

func TestVerifierClaims(t *testing.T) {
	raw, vcek := sample(t)
	a, err := snp.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	attestation, err := proto.Marshal(&spb.Attestation{Report: mustProto(t, raw), CertificateChain: &spb.CertificateChain{VcekCert: vcek}})
	if err != nil {
		t.Fatal(err)
	}
	v := snp.NewVerifier(nil).WithMinTCB(sampleTCB)
	for name, cpu := range map[string][]byte{"cert table": withCertTable(raw, vcek), "attestation proto": attestation} {
		c, err := v.Verify(cpu, inValidity)
		if err != nil {
			t.Fatalf("%s: Verify: %v", name, err)
		}
		want := sha256.Sum256(a.Measurement[:])
		if c.Kind != attest.KindSEVSNP || c.Measurement != want || c.ReportData != a.ReportData || !c.Debug {
			t.Errorf("%s: claims %+v", name, c)
		}
		if c.TCB != "bl=2 tee=0 snp=5 ucode=68" {
			t.Errorf("%s: TCB %q", name, c.TCB)
		}
		if wantUntil := time.Date(2029, time.September, 24, 0, 55, 28, 0, time.UTC); !c.ValidUntil.Equal(wantUntil) {
			t.Errorf("%s: ValidUntil %v, want %v", name, c.ValidUntil, wantUntil)
		}
	}
	// A bare report verifies with its VCEK shipped as collateral.
	if _, err := v.VerifyEvidence(&attest.Evidence{Kind: attest.KindSEVSNP, CPU: raw, Collateral: vcek}, inValidity); err != nil {
		t.Fatalf("VerifyEvidence with collateral: %v", err)
	}
	high, _ := kds.ComposeTCBParts(kds.TCBParts{BlSpl: 3, SnpSpl: 5, UcodeSpl: 68})
	var pe *attest.PolicyError
	if _, err := v.WithMinTCB(high).Verify(withCertTable(raw, vcek), inValidity); !errors.As(err, &pe) || pe.Rule != snp.RuleTCB {
		t.Fatalf("Verify below the minimum TCB = %v, want a %q policy error", err, snp.RuleTCB)
	}
	if _, err := v.Verify(raw, inValidity); !errors.Is(err, attest.ErrChain) {
		t.Fatalf("Verify of a bare report = %v, want ErrChain", err)
	}
}

func mustProto(t *testing.T, raw []byte) *spb.Report {
	t.Helper()
	p, err := abi.ReportToProto(raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTamperedFails(t *testing.T) {
	raw, vcek := sample(t)
	for _, off := range []int{0x00, 0x50, 0x90, abi.ReportSize - 0x2a0 - 1} { // version, report_data, measurement, last signed byte
		bad := append([]byte(nil), raw...)
		bad[off] ^= 1
		r, err := snp.Parse(bad)
		if err != nil {
			if off == 0 {
				continue // version 3 needs fields version 2 lacks; refused at parse
			}
			t.Fatalf("offset %#x: Parse: %v", off, err)
		}
		if err := snp.VerifySignature(r, vcek, nil, inValidity); !errors.Is(err, attest.ErrSignature) {
			t.Errorf("offset %#x: VerifySignature = %v, want ErrSignature", off, err)
		}
	}
}

func TestChainRefused(t *testing.T) {
	raw, vcek := sample(t)
	r, err := snp.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	expired := time.Date(2029, time.September, 25, 0, 0, 0, 0, time.UTC)
	if err := snp.VerifySignature(r, vcek, nil, expired); !errors.Is(err, attest.ErrChain) {
		t.Errorf("after the VCEK expired: %v, want ErrChain", err)
	}
	genoa := snp.AMDRoots()
	delete(genoa, "Milan")
	if err := snp.VerifySignature(r, vcek, genoa, inValidity); !errors.Is(err, attest.ErrChain) {
		t.Errorf("without Milan's roots: %v, want ErrChain", err)
	}
	if err := snp.VerifySignature(r, vcek, snp.Roots{}, inValidity); !errors.Is(err, attest.ErrNoRoots) {
		t.Errorf("with empty roots: %v, want ErrNoRoots", err)
	}
	if err := snp.VerifySignature(r, []byte("not a certificate"), nil, inValidity); !errors.Is(err, attest.ErrChain) {
		t.Errorf("with a bad certificate: %v, want ErrChain", err)
	}
}

func TestLoadRoots(t *testing.T) {
	raw, vcek := sample(t)
	r, err := snp.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := snp.LoadRoots(dir); !errors.Is(err, attest.ErrNoRoots) {
		t.Fatalf("LoadRoots of an empty dir = %v, want ErrNoRoots", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Milan.pem"), trust.AskArkMilanVcekBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Milan_vlek.pem"), trust.AskArkMilanVlekBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	roots, err := snp.LoadRoots(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := snp.VerifySignature(r, vcek, roots, inValidity); err != nil {
		t.Fatalf("VerifySignature with loaded roots: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Genoa.pem"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := snp.LoadRoots(dir); err == nil {
		t.Fatal("LoadRoots accepted a junk Genoa.pem")
	}
}

func TestParseRefuses(t *testing.T) {
	raw, _ := sample(t)
	for name, in := range map[string][]byte{
		"empty":     nil,
		"short":     raw[:abi.ReportSize-1],
		"oversized": make([]byte, snp.MaxReportSize+1),
		"bad table": append(append([]byte(nil), raw...), 1, 2, 3),
		"bad proto": {0x0a, 0xff},
		"no report": {0x12, 0x00},
	} {
		if _, err := snp.Parse(in); !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("%s: Parse = %v, want ErrMalformed", name, err)
		}
	}
}

func TestPolicy(t *testing.T) {
	raw, _ := sample(t)
	parse := func() *snp.Report {
		r, err := snp.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		r.Policy &^= 1 << 19 // the sample allows debugging; clear it for a report that passes
		return r
	}
	good := parse()
	minTCB, err := kds.ComposeTCBParts(kds.TCBParts{BlSpl: 2, SnpSpl: 5, UcodeSpl: 68})
	if err != nil {
		t.Fatal(err)
	}
	policy := snp.Policy{Measurements: [][32]byte{snp.ImageHash(good)}, ReportData: good.ReportData, MinTCB: minTCB}
	if err := policy.Check(good); err != nil {
		t.Fatalf("Check of a good report: %v", err)
	}

	rule := func(name string, err error, want string) {
		t.Helper()
		var pe *attest.PolicyError
		if !errors.As(err, &pe) || pe.Rule != want || !errors.Is(err, attest.ErrPolicy) {
			t.Errorf("%s: Check = %v, want a %q policy error", name, err, want)
		}
	}
	debug, _ := snp.Parse(raw) // as shipped: debugging allowed
	rule("debug", policy.Check(debug), attest.RuleDebug)
	allowDebug := policy
	allowDebug.AllowDebug = true
	if err := allowDebug.Check(debug); err != nil {
		t.Errorf("debug allowed: %v", err)
	}

	ma := parse()
	ma.Policy |= 1 << 18
	rule("migration agent", policy.Check(ma), snp.RuleMigrationAgent)
	allowMA := policy
	allowMA.AllowMigrationAgent = true
	if err := allowMA.Check(ma); err != nil {
		t.Errorf("migration agent allowed: %v", err)
	}

	old := parse()
	old.ReportedTCB, _ = kds.ComposeTCBParts(kds.TCBParts{BlSpl: 2, SnpSpl: 4, UcodeSpl: 68})
	rule("tcb", policy.Check(old), snp.RuleTCB)

	data := parse()
	data.ReportData[0] ^= 1
	if err := policy.Check(data); !errors.Is(err, attest.ErrReportData) {
		t.Errorf("wrong report_data: Check = %v, want ErrReportData", err)
	}

	m := parse()
	m.Measurement[0] ^= 1
	rule("measurement", policy.Check(m), attest.RuleMeasurement)
	none := snp.Policy{ReportData: good.ReportData} // no measurement allowed
	rule("no measurements", none.Check(good), attest.RuleMeasurement)
}
