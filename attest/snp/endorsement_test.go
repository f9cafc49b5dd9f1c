package snp

import (
	"bytes"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sevtest "github.com/google/go-sev-guest/testing"
	"github.com/google/go-sev-guest/verify/trust"
	"google.golang.org/protobuf/proto"

	"github.com/cocoon-go/cocoon/attest"
)

// sampleReportAndVCEK parses the real Milan sample and its VCEK.
func sampleReportAndVCEK(t *testing.T) (*Report, *x509.Certificate) {
	t.Helper()
	raw, err := os.ReadFile("testdata/attestation.bin")
	if err != nil {
		t.Fatal(err)
	}
	der, err := os.ReadFile("testdata/vcek.der")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return r, cert
}

// TestSampleEndorsedPlatform checks that the real sample reports the TCB and
// chip its VCEK certifies, and that checkEndorsedPlatform refuses it once
// either differs.
func TestSampleEndorsedPlatform(t *testing.T) {
	r, cert := sampleReportAndVCEK(t)
	exts, err := kds.VcekCertificateExtensions(cert)
	if err != nil {
		t.Fatal(err)
	}
	p := r.attestation.GetReport()
	if kds.TCBVersion(p.GetReportedTcb()) != exts.TCBVersion || !bytes.Equal(p.GetChipId(), exts.HWID) {
		t.Fatalf("sample reports TCB %#x chip %x, VCEK certifies TCB %#x chip %x",
			p.GetReportedTcb(), p.GetChipId(), uint64(exts.TCBVersion), exts.HWID)
	}
	if err := checkEndorsedPlatform(r, cert); err != nil {
		t.Fatalf("checkEndorsedPlatform(sample) = %v", err)
	}

	newer := kds.TCBVersion(p.GetReportedTcb()) + 1<<56 // one more microcode SPL
	for name, tc := range map[string]struct {
		modify func(*Report)
		want   string
	}{
		"signed REPORTED_TCB": {func(r *Report) { r.attestation.Report.ReportedTcb = uint64(newer) }, "REPORTED_TCB"},
		"Report.ReportedTCB":  {func(r *Report) { r.ReportedTCB = newer }, "REPORTED_TCB"},
		"CHIP_ID": {func(r *Report) {
			r.attestation.Report.ChipId = bytes.Repeat([]byte{0x5a}, abi.ChipIDSize)
		}, "CHIP_ID"},
	} {
		r, cert := sampleReportAndVCEK(t)
		tc.modify(r)
		err := checkEndorsedPlatform(r, cert)
		if !errors.Is(err, attest.ErrChain) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s changed: checkEndorsedPlatform = %v, want ErrChain naming %s", name, err, tc.want)
		}
	}

	// A masked (all-zero) CHIP_ID is not compared.
	r, cert = sampleReportAndVCEK(t)
	r.attestation.Report.ChipId = make([]byte, abi.ChipIDSize)
	if err := checkEndorsedPlatform(r, cert); err != nil {
		t.Errorf("masked CHIP_ID: checkEndorsedPlatform = %v", err)
	}
}

// fakeChain is a test-only AMD chain whose VCEK (and VLEK) certify tcb and,
// for the VCEK, hwid.
type fakeChain struct {
	signer *sevtest.AmdSigner
	roots  Roots
	now    time.Time
}

func newFakeChain(t *testing.T, tcb kds.TCBVersion, hwid []byte) *fakeChain {
	t.Helper()
	now := time.Date(2026, time.January, 20, 0, 0, 0, 0, time.UTC)
	const product = "Milan-B0"
	parts := kds.DecomposeTCBVersion(tcb)
	b := &sevtest.AmdSignerBuilder{
		Keys:             sevtest.DefaultAmdKeys(),
		ProductName:      product,
		CSPID:            "cocoon-test",
		ArkCreationTime:  now.Add(-time.Hour),
		AskCreationTime:  now.Add(-time.Hour),
		AsvkCreationTime: now.Add(-time.Hour),
		VcekCreationTime: now.Add(-time.Hour),
		VlekCreationTime: now.Add(-time.Hour),
		VcekCustom:       sevtest.CertOverride{Extensions: sevtest.CustomExtensions(parts, hwid, "", product)},
		VlekCustom:       sevtest.CertOverride{Extensions: sevtest.CustomExtensions(parts, nil, "cocoon-test", product)},
	}
	s, err := b.TestOnlyCertChain()
	if err != nil {
		t.Fatal(err)
	}
	roots := Roots{"Milan": {{
		Product:      "Milan",
		ProductLine:  "Milan",
		ProductCerts: &trust.ProductCerts{Ark: s.Ark, Ask: s.Ask, Asvk: s.Asvk},
	}}}
	return &fakeChain{signer: s, roots: roots, now: now}
}

// report returns the real sample's report with REPORTED_TCB tcb, CHIP_ID
// chip and the given signer, signed by the fake chain's VCEK or VLEK.
func (c *fakeChain) report(t *testing.T, tcb kds.TCBVersion, chip []byte, signer abi.ReportSigner) *Report {
	t.Helper()
	raw, err := os.ReadFile("testdata/attestation.bin")
	if err != nil {
		t.Fatal(err)
	}
	p, err := abi.ReportToProto(raw[:abi.ReportSize])
	if err != nil {
		t.Fatal(err)
	}
	p = proto.Clone(p).(*spb.Report)
	p.ReportedTcb = uint64(tcb)
	p.ChipId = chip
	info, err := abi.ParseSignerInfo(p.GetSignerInfo())
	if err != nil {
		t.Fatal(err)
	}
	info.SigningKey = signer
	p.SignerInfo = abi.ComposeSignerInfo(info)
	b, err := abi.ReportToAbiBytes(p)
	if err != nil {
		t.Fatal(err)
	}
	R, S, err := c.signer.Sign(abi.SignedComponent(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := abi.SetSignature(R, S, b); err != nil {
		t.Fatal(err)
	}
	r, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestVerifySignatureEndorsedPlatform signs reports with a fake AMD chain
// whose VCEK certifies an old TCB and one chip, and checks that
// VerifySignature, and a Verifier with a minimum TCB, refuse reports that
// claim a newer TCB or another chip although their signature and chain are
// good.
func TestVerifySignatureEndorsedPlatform(t *testing.T) {
	oldTCB, err := kds.ComposeTCBParts(kds.TCBParts{BlSpl: 2, TeeSpl: 0, SnpSpl: 5, UcodeSpl: 68})
	if err != nil {
		t.Fatal(err)
	}
	newTCB, err := kds.ComposeTCBParts(kds.TCBParts{BlSpl: 4, TeeSpl: 0, SnpSpl: 22, UcodeSpl: 213})
	if err != nil {
		t.Fatal(err)
	}
	hwid := bytes.Repeat([]byte{0xc0}, abi.ChipIDSize)
	other := bytes.Repeat([]byte{0xde}, abi.ChipIDSize)
	c := newFakeChain(t, oldTCB, hwid)
	vcek, vlek := c.signer.Vcek.Raw, c.signer.Vlek.Raw

	for name, tc := range map[string]struct {
		tcb         kds.TCBVersion
		chip        []byte
		signer      abi.ReportSigner
		endorsement []byte
		ok          bool
	}{
		"VCEK, certified TCB and chip":  {oldTCB, hwid, abi.VcekReportSigner, vcek, true},
		"VCEK, masked CHIP_ID":          {oldTCB, make([]byte, abi.ChipIDSize), abi.VcekReportSigner, vcek, true},
		"VCEK, newer REPORTED_TCB":      {newTCB, hwid, abi.VcekReportSigner, vcek, false},
		"VCEK, another CHIP_ID":         {oldTCB, other, abi.VcekReportSigner, vcek, false},
		"VLEK, certified TCB, any chip": {oldTCB, other, abi.VlekReportSigner, vlek, true},
		"VLEK, newer REPORTED_TCB":      {newTCB, hwid, abi.VlekReportSigner, vlek, false},
	} {
		r := c.report(t, tc.tcb, tc.chip, tc.signer)
		err := VerifySignature(r, tc.endorsement, c.roots, c.now)
		if tc.ok && err != nil {
			t.Errorf("%s: VerifySignature = %v", name, err)
		} else if !tc.ok && !errors.Is(err, attest.ErrChain) {
			t.Errorf("%s: VerifySignature = %v, want ErrChain", name, err)
		}
	}

	// The attack: an old VCEK signs a report claiming the newest TCB.
	v := NewVerifier(c.roots).WithMinTCB(newTCB)
	forged := c.report(t, newTCB, hwid, abi.VcekReportSigner)
	if _, err := v.VerifyEvidence(&attest.Evidence{CPU: forged.Raw(), Collateral: vcek}, c.now); !errors.Is(err, attest.ErrChain) {
		t.Errorf("Verifier.WithMinTCB(new) on a report by an old VCEK claiming the new TCB = %v, want ErrChain", err)
	}
	honest := c.report(t, oldTCB, hwid, abi.VcekReportSigner)
	var pe *attest.PolicyError
	if _, err := v.VerifyEvidence(&attest.Evidence{CPU: honest.Raw(), Collateral: vcek}, c.now); !errors.As(err, &pe) || pe.Rule != RuleTCB {
		t.Errorf("Verifier.WithMinTCB(new) on an honest old report = %v, want RuleTCB", err)
	}
	if _, err := NewVerifier(c.roots).WithMinTCB(oldTCB).VerifyEvidence(&attest.Evidence{CPU: honest.Raw(), Collateral: vcek}, c.now); err != nil {
		t.Errorf("Verifier.WithMinTCB(old) on an honest old report = %v", err)
	}
}
