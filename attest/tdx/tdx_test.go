package tdx

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	tdxtesting "github.com/google/go-tdx-guest/testing"
	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/cocoon-go/cocoon/attest"
)

const collateralDir = "testdata/tdx-2026-01/collateral"

// pinned is the date of the saved collateral: it verifies then, not later.
var pinned = time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)

func readQuote() ([]byte, error) { return os.ReadFile("testdata/tdx-2026-01/quote.bin") }

func realQuote(t *testing.T) []byte {
	t.Helper()
	raw, err := readQuote()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestRealQuoteVerifies(t *testing.T) {
	raw := realQuote(t)
	c, err := NewVerifier(Dir(collateralDir)).Verify(raw, pinned)
	if err != nil {
		t.Fatalf("Verify at %v: %v", pinned, err)
	}
	q, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != attest.KindTDX || c.Measurement != ImageHash(q) || c.ReportData != q.ReportData || c.Debug || c.TCB != "UpToDate" {
		t.Errorf("claims = %+v", c)
	}
	if !c.ValidUntil.After(pinned) || c.ValidUntil.After(pinned.AddDate(0, 2, 0)) {
		t.Errorf("ValidUntil = %v, want shortly after %v", c.ValidUntil, pinned)
	}
	t.Logf("quote v%d, image hash %x, TCB %s, valid until %v", q.Version, c.Measurement, c.TCB, c.ValidUntil)
}

func TestRealQuoteFailsAfterCollateralExpires(t *testing.T) {
	_, err := NewVerifier(Dir(collateralDir)).Verify(realQuote(t), time.Now())
	if !errors.Is(err, ErrCollateral) || !errors.Is(err, attest.ErrChain) {
		t.Fatalf("Verify today: err = %v, want ErrCollateral", err)
	}
	t.Log(err)
}

func TestFlippedByteFailsSignature(t *testing.T) {
	raw := bytes.Clone(realQuote(t))
	raw[48+200] ^= 1 // inside the TD report body (MRTD starts at 48+136)
	_, err := NewVerifier(Dir(collateralDir)).Verify(raw, pinned)
	if !errors.Is(err, attest.ErrSignature) {
		t.Fatalf("err = %v, want ErrSignature", err)
	}
}

func TestMissingCollateralRefused(t *testing.T) {
	_, err := NewVerifier(Dir(t.TempDir())).Verify(realQuote(t), pinned)
	if !errors.Is(err, ErrCollateral) {
		t.Fatalf("err = %v, want ErrCollateral", err)
	}
}

// verifiedClaims returns the claims of the real quote at the pinned date.
func verifiedClaims(t *testing.T) *attest.Claims {
	t.Helper()
	c, err := NewVerifier(Dir(collateralDir)).Verify(realQuote(t), pinned)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPolicy(t *testing.T) {
	c := verifiedClaims(t)
	ok := Policy{ReportData: c.ReportData, Measurements: [][32]byte{c.Measurement}}
	if err := ok.Check(c); err != nil {
		t.Fatalf("allowed quote refused: %v", err)
	}

	other := ok
	other.Measurements = [][32]byte{{1}}
	var pe *attest.PolicyError
	if err := other.Check(c); !errors.As(err, &pe) || pe.Rule != attest.RuleMeasurement {
		t.Errorf("unknown measurement: err = %v, want rule %q", err, attest.RuleMeasurement)
	}

	wrong := ok
	wrong.ReportData[0] ^= 1
	if err := wrong.Check(c); !errors.Is(err, attest.ErrReportData) {
		t.Errorf("wrong report_data: err = %v, want ErrReportData", err)
	}

	stale := *c
	stale.TCB = "OutOfDate"
	if err := ok.Check(&stale); !errors.As(err, &pe) || pe.Rule != RuleTCB {
		t.Errorf("OutOfDate TCB: err = %v, want rule %q", err, RuleTCB)
	}
	lenient := ok
	lenient.TCBStatuses = []string{"UpToDate", "OutOfDate"}
	if err := lenient.Check(&stale); err != nil {
		t.Errorf("OutOfDate TCB accepted by configuration: %v", err)
	}
}

// TestDebugTDRefused flips TDATTRIBUTES.DEBUG in the real quote. The
// signature step would refuse the result too; the policy step must refuse it
// on its own.
func TestDebugTDRefused(t *testing.T) {
	raw := bytes.Clone(realQuote(t))
	const tdAttributes = 48 + 120 // header, then TEE_TCB_SVN, MRSEAM, MRSIGNERSEAM, SEAMATTRIBUTES
	raw[tdAttributes] |= debugAttribute
	q, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Debug() {
		t.Fatalf("TDATTRIBUTES = %#x, want DEBUG set", q.TDAttributes)
	}
	c := q.Claims(&Collateral{TCBStatus: "UpToDate"})
	p := Policy{ReportData: c.ReportData, Measurements: [][32]byte{c.Measurement}}
	var pe *attest.PolicyError
	if err := p.Check(c); !errors.As(err, &pe) || pe.Rule != attest.RuleDebug {
		t.Fatalf("debug TD: err = %v, want rule %q", err, attest.RuleDebug)
	}
	p.AllowDebug = true
	if err := p.Check(c); err != nil {
		t.Fatalf("debug TD with AllowDebug: %v", err)
	}
}

// TestTDXRefusesMigratableTD sets TDATTRIBUTES.MIGRATABLE in the real
// quote: a TD whose memory a host-chosen migration TD can export is refused
// by default (the signature step would refuse the edited quote too; the
// attribute check must refuse it on its own), and accepted only when asked.
func TestTDXRefusesMigratableTD(t *testing.T) {
	raw := bytes.Clone(realQuote(t))
	const tdAttributes = 48 + 120
	if q, err := Parse(raw); err != nil || q.Migratable() || CheckAttributes(q, false) != nil {
		t.Fatalf("the real quote: migratable %v, %v", q.Migratable(), err)
	}
	raw[tdAttributes+3] |= migratableAttribute >> 24 // bit 29, little-endian
	q, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Migratable() || q.Debug() {
		t.Fatalf("TDATTRIBUTES = %#x, want MIGRATABLE alone added", q.TDAttributes)
	}
	var pe *attest.PolicyError
	if err := CheckAttributes(q, false); !errors.As(err, &pe) || pe.Rule != RuleMigratable {
		t.Fatalf("migratable TD: err = %v, want rule %q", err, RuleMigratable)
	}
	if err := CheckAttributes(q, true); err != nil {
		t.Fatalf("migratable TD, allowed: %v", err)
	}
	// The default verifier still accepts the real, non-migratable quote.
	if _, err := NewVerifier(Dir(collateralDir)).Verify(realQuote(t), pinned); err != nil {
		t.Fatalf("real quote: %v", err)
	}
	if _, err := NewVerifier(Dir(collateralDir)).Verify(raw, pinned); err == nil {
		t.Fatal("migratable quote accepted by the verifier")
	}
}

// TestChecker runs the real quote through attest.Checker unchanged. The
// quote's report_data binds no Cocoon bundle, so the Checker gets past the
// verifier and refuses at the binding step; attest.Policy's allow-list is
// then shown to accept the verifier's image hash and refuse another.
func TestChecker(t *testing.T) {
	bundle := &attest.Bundle{
		HPKEKey:    []byte{0x00, 0x20, 1, 2, 3},
		SigningKey: make([]byte, 32),
		Created:    pinned.Unix(),
		Expires:    pinned.Add(time.Hour).Unix(),
		Config:     attest.RuntimeConfig{Engine: attest.EngineEmbedded, KEM: 0x0020},
	}
	ev := &attest.Evidence{Kind: attest.KindTDX, Bundle: bundle.Marshal(), CPU: realQuote(t)}
	c := verifiedClaims(t)
	policy := attest.DefaultPolicy()
	policy.Measurements = [][32]byte{c.Measurement}
	checker := attest.NewChecker(policy, NewVerifier(Dir(collateralDir)))
	checker.Now = func() time.Time { return pinned }
	if _, err := checker.Check(ev.Marshal()); !errors.Is(err, attest.ErrReportData) {
		t.Fatalf("Checker: err = %v, want ErrReportData (verified, but binds another bundle)", err)
	}
	checker.Now = time.Now
	if _, err := checker.Check(ev.Marshal()); !errors.Is(err, ErrCollateral) {
		t.Fatalf("Checker today: err = %v, want ErrCollateral", err)
	}
	// With a collateral snapshot in the evidence, a verifier without a
	// getter of its own gets as far.
	withSnapshot := *ev
	withSnapshot.Collateral = realSnapshot(t)
	offline := attest.NewChecker(policy, NewVerifier(nil))
	offline.Now = func() time.Time { return pinned }
	if _, err := offline.Check(withSnapshot.Marshal()); !errors.Is(err, attest.ErrReportData) {
		t.Fatalf("Checker with a snapshot: err = %v, want ErrReportData", err)
	}

	for _, tc := range []struct {
		name    string
		allowed [32]byte
		want    error
	}{
		{"allowed", c.Measurement, nil},
		{"not allowed", [32]byte{1}, attest.ErrPolicy},
	} {
		p := attest.DefaultPolicy()
		p.Measurements = [][32]byte{tc.allowed}
		err := p.Check(c, bundle, pinned)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: attest.Policy.Check = %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestImageHash(t *testing.T) {
	q, err := Parse(realQuote(t))
	if err != nil {
		t.Fatal(err)
	}
	// The definition, spelled out: SHA-256 over the eight 48-byte registers.
	var concat []byte
	for _, f := range [][48]byte{q.MRTD, q.MRConfigID, q.MROwner, q.MROwnerConfig, q.RTMR[0], q.RTMR[1], q.RTMR[2], q.RTMR[3]} {
		concat = append(concat, f[:]...)
	}
	if len(concat) != 384 {
		t.Fatalf("%d bytes", len(concat))
	}
	raw := realQuote(t)
	if !bytes.Equal(q.MRTD[:], raw[48+136:48+184]) {
		t.Errorf("MRTD not at offset 184 of the quote")
	}
	got := ImageHash(q)
	want := sha256Sum(concat)
	if got != want {
		t.Errorf("ImageHash = %x, want %x", got, want)
	}
	t.Logf("image hash %s", hex.EncodeToString(got[:]))
}

func TestParseRefusesGarbage(t *testing.T) {
	for _, raw := range [][]byte{nil, []byte("not a quote"), realQuote(t)[:100], make([]byte, MaxQuoteSize+1)} {
		if _, err := Parse(raw); !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("Parse(%d bytes): err = %v, want ErrMalformed", len(raw), err)
		}
	}
}

// go-tdx-guest's own samples: a v4 quote with Intel PCS responses of 2023,
// served by its TestGetter, and a v5 quote whose collateral it does not ship.
var (
	sampleTime   = time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)
	sampleV5Time = time.Date(2026, time.February, 3, 1, 0, 0, 0, time.UTC)
)

func TestGoTDXGuestSampleV4(t *testing.T) {
	q, err := Parse(testdata.RawQuote)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignature(q, nil, sampleTime); err != nil {
		t.Fatalf("signature and chain: %v", err)
	}
	// go-tdx-guest's sample TCB info has newer SVNs than its sample quote
	// (its own tests expect this refusal), so full verification must fail at
	// the collateral step, after the signature step passed.
	if _, err := NewVerifier(tdxtesting.TestGetter).Verify(testdata.RawQuote, sampleTime); !errors.Is(err, ErrCollateral) {
		t.Fatalf("sample with go-tdx-guest's test collateral: err = %v, want ErrCollateral (no matching TCB level)", err)
	}
	tampered := bytes.Clone(testdata.RawQuote)
	tampered[48+136] ^= 1 // MRTD
	if _, err := NewVerifier(tdxtesting.TestGetter).Verify(tampered, sampleTime); !errors.Is(err, attest.ErrSignature) {
		t.Fatalf("tampered sample: err = %v, want ErrSignature", err)
	}
}

func TestGoTDXGuestSampleV5(t *testing.T) {
	q, err := Parse(testdata.RawQuoteV5)
	if err != nil {
		t.Fatal(err)
	}
	if q.Version != 5 {
		t.Fatalf("version %d", q.Version)
	}
	if err := VerifySignature(q, nil, sampleV5Time); err != nil {
		t.Fatalf("signature and chain: %v", err)
	}
	tampered := bytes.Clone(testdata.RawQuoteV5)
	tampered[48+6+136] ^= 1 // MRTD, after the header and the body descriptor
	tq, err := Parse(tampered)
	if err != nil {
		t.Fatalf("tampered v5 no longer parses: %v", err)
	}
	if err := VerifySignature(tq, nil, sampleV5Time); !errors.Is(err, attest.ErrSignature) {
		t.Fatalf("tampered v5 sample: err = %v, want ErrSignature", err)
	}
}

func TestDir(t *testing.T) {
	d := Dir(collateralDir)
	for _, url := range []string{
		"https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=../../etc",
		"https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=ffffffffffff",
		"https://example.com/qe/identity",
	} {
		if _, _, err := d.Get(url); !errors.Is(err, ErrNotInDir) {
			t.Errorf("Get(%q): err = %v, want ErrNotInDir", url, err)
		}
	}
	h, b, err := d.Get("https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=90C06F000000")
	if err != nil || len(b) == 0 || len(h["Tcb-Info-Issuer-Chain"]) != 1 {
		t.Errorf("TCB info: header %v, %d bytes, err %v", h, len(b), err)
	}
}

// TestTamperedCollateralRefused edits the TCB info Intel signed.
func TestTamperedCollateralRefused(t *testing.T) {
	dir := t.TempDir()
	entries, err := os.ReadDir(collateralDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(collateralDir + "/" + e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "tcb_info_90c06f000000.json" || e.Name() == "tcb_info_00a06d080000.json" {
			b = bytes.Replace(b, []byte(`"UpToDate"`), []byte(`"UpToDatE"`), 1)
		}
		if err := os.WriteFile(dir+"/"+e.Name(), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewVerifier(Dir(dir)).Verify(realQuote(t), pinned); !errors.Is(err, ErrCollateral) {
		t.Fatalf("err = %v, want ErrCollateral", err)
	}
}
