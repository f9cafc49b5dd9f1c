package attest_test

import (
	"bytes"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/simulated"
)

// Fixed vendor seeds: the same seed is the same dev vendor.
var (
	seedA = bytes.Repeat([]byte{0xa}, simulated.SeedSize)
	seedB = bytes.Repeat([]byte{0xb}, simulated.SeedSize)
)

func testVendor(t testing.TB, seed []byte) *simulated.Vendor {
	t.Helper()
	v, err := simulated.NewVendor(seed)
	if err != nil {
		t.Fatalf("NewVendor: %v", err)
	}
	return v
}

// testChecker trusts vendor, allows the simulated measurement and both test
// models, and runs on the pinned clock.
func testChecker(vendor *simulated.Vendor) *attest.Checker {
	c := attest.NewChecker(attest.Policy{
		SimulatedMeasurements: [][32]byte{simulated.Measurement},
		Models:                []string{modelHashA, modelHashB},
		MaxAge:                time.Hour,
	}, vendor.Verifier())
	c.Now = func() time.Time { return testNow }
	return c
}

// device is a simulated TEE of vendor whose clock is the pinned one.
func device(vendor *simulated.Vendor, opts ...simulated.Option) *simulated.Device {
	opts = append([]simulated.Option{simulated.WithClock(func() time.Time { return testNow })}, opts...)
	return vendor.Device(simulated.Measurement, opts...)
}

func evidence(t testing.TB, p attest.Producer, b *attest.Bundle) *attest.Evidence {
	t.Helper()
	e, err := attest.Attest(p, b, nil)
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	return e
}

func TestCheckSuccess(t *testing.T) {
	vendor := testVendor(t, seedA)
	b := testBundle()
	e := evidence(t, device(vendor), b)
	v, err := testChecker(vendor).Check(e.Marshal())
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if v.KeyID != b.Hash() || v.Bundle.Hash() != b.Hash() {
		t.Errorf("KeyID = %x, want the bundle hash %x", v.KeyID, b.Hash())
	}
	c := v.Claims
	if c.Kind != attest.KindSimulated || c.Measurement != simulated.Measurement || c.Debug ||
		!c.Issued.Equal(testNow) || c.TCB != attest.SimulatedTCB || c.ReportData != attest.ReportData(b.Hash()) {
		t.Errorf("claims = %+v", c)
	}
	// The result holds until the report is MaxAge old (before the bundle expires).
	if want := testNow.Add(time.Hour); !v.Expires.Equal(want) {
		t.Errorf("Expires = %v, want %v", v.Expires, want)
	}
}

// sentinels are the errors of the steps; a refusal must match its own and no other.
var sentinels = []error{
	attest.ErrMalformed, attest.ErrUnknownKind, attest.ErrUntrustedKind, attest.ErrNoRoots,
	attest.ErrChain, attest.ErrSignature, attest.ErrReportData, attest.ErrPolicy, attest.ErrExpired,
}

func wantOnly(t *testing.T, err, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted, want %v", want)
	}
	for _, s := range sentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Errorf("errors.Is(%v, %v) = %v", err, s, got)
		}
	}
}

func wantRule(t *testing.T, err error, rule string) {
	t.Helper()
	wantOnly(t, err, attest.ErrPolicy)
	var pe *attest.PolicyError
	if !errors.As(err, &pe) || pe.Rule != rule {
		t.Errorf("err = %v, want a PolicyError with rule %q", err, rule)
	}
}

func TestCheckRefusesUnknownKind(t *testing.T) {
	vendor := testVendor(t, seedA)
	e := evidence(t, device(vendor), testBundle())
	e.Kind = "quantum-enclave"
	_, err := testChecker(vendor).Check(e.Marshal())
	wantOnly(t, err, attest.ErrUnknownKind)
}

func TestCheckRefusesSimulatedWithoutRoot(t *testing.T) {
	vendor := testVendor(t, seedA)
	raw := evidence(t, device(vendor), testBundle()).Marshal()

	// No simulated verifier: simulated evidence is not trusted by default.
	c := testChecker(vendor)
	c.Verifiers = nil
	_, err := c.Check(raw)
	wantOnly(t, err, attest.ErrUntrustedKind)

	// A simulated verifier without roots never falls back to system roots.
	for name, roots := range map[string]*x509.CertPool{"nil": nil, "empty": x509.NewCertPool()} {
		c.Verifiers = []attest.Verifier{attest.NewSimulatedVerifier(roots)}
		_, err := c.Check(raw)
		t.Run(name, func(t *testing.T) { wantOnly(t, err, attest.ErrNoRoots) })
	}
}

func TestCheckRefusesOtherVendor(t *testing.T) {
	e := evidence(t, device(testVendor(t, seedB)), testBundle())
	_, err := testChecker(testVendor(t, seedA)).Check(e.Marshal())
	wantOnly(t, err, attest.ErrChain)
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Errorf("err = %v, want an x509.UnknownAuthorityError inside", err)
	}
}

// TestCheckTriesEachVerifierOfAKind: a node trusting several dev vendors
// has one simulated verifier per root.
func TestCheckTriesEachVerifierOfAKind(t *testing.T) {
	a, b := testVendor(t, seedA), testVendor(t, seedB)
	c := testChecker(a)
	c.Verifiers = []attest.Verifier{b.Verifier(), a.Verifier()}
	if _, err := c.Check(evidence(t, device(a), testBundle()).Marshal()); err != nil {
		t.Errorf("evidence of the second trusted vendor: %v", err)
	}
	other := testVendor(t, bytes.Repeat([]byte{0xc}, simulated.SeedSize))
	_, err := c.Check(evidence(t, device(other), testBundle()).Marshal())
	wantOnly(t, err, attest.ErrChain)
}

func TestCheckRefusesExpiredChain(t *testing.T) {
	vendor := testVendor(t, seedA)
	e := evidence(t, device(vendor), testBundle())
	_, err := vendor.Verifier().Verify(e.CPU, time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))
	wantOnly(t, err, attest.ErrChain)
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Errorf("err = %v, want an expired certificate", err)
	}
}

func TestCheckRefusesFlippedReportByte(t *testing.T) {
	vendor := testVendor(t, seedA)
	e := evidence(t, device(vendor), testBundle())
	// Byte 8 is the first byte of the measurement, in the signed body.
	e.CPU[8] ^= 1
	_, err := testChecker(vendor).Check(e.Marshal())
	wantOnly(t, err, attest.ErrSignature)
}

// TestCheckRefusesAnyFlippedByte flips each bit of a byte of the evidence
// in turn: no single change may pass.
func TestCheckRefusesAnyFlippedByte(t *testing.T) {
	vendor := testVendor(t, seedA)
	raw := evidence(t, device(vendor), testBundle()).Marshal()
	c := testChecker(vendor)
	if _, err := c.Check(raw); err != nil {
		t.Fatalf("unmodified: %v", err)
	}
	for i := range raw {
		mod := bytes.Clone(raw)
		mod[i] ^= 0x10
		if _, err := c.Check(mod); err == nil {
			t.Errorf("accepted evidence with byte %d flipped", i)
		}
	}
}

func TestCheckRefusesSwappedBundle(t *testing.T) {
	vendor := testVendor(t, seedA)
	e := evidence(t, device(vendor), testBundle())
	other := testBundle()
	other.HPKEKey[2] ^= 0xff // the attacker's key
	e.Bundle = other.Marshal()
	_, err := testChecker(vendor).Check(e.Marshal())
	wantOnly(t, err, attest.ErrReportData)
}

func TestCheckRefusesMeasurement(t *testing.T) {
	vendor := testVendor(t, seedA)
	var other [32]byte
	other[0] = 1
	e := evidence(t, vendor.Device(other, simulated.WithClock(func() time.Time { return testNow })), testBundle())
	_, err := testChecker(vendor).Check(e.Marshal())
	wantRule(t, err, attest.RuleMeasurement)

	// A policy that names no measurement refuses everything.
	c := testChecker(vendor)
	c.Policy.SimulatedMeasurements = nil
	_, err = c.Check(evidence(t, device(vendor), testBundle()).Marshal())
	wantRule(t, err, attest.RuleMeasurement)
}

func TestCheckRefusesModel(t *testing.T) {
	vendor := testVendor(t, seedA)
	c := testChecker(vendor)
	for name, hash := range map[string]string{"unlisted": "c3" + modelHashA[2:], "unknown hash": ""} {
		b := testBundle()
		b.Models[0].Hash = hash
		_, err := c.Check(evidence(t, device(vendor), b).Marshal())
		t.Run(name, func(t *testing.T) { wantRule(t, err, attest.RuleModel) })
	}
	// An empty model list allows any model.
	c.Policy.Models = nil
	b := testBundle()
	b.Models[0].Hash = ""
	if _, err := c.Check(evidence(t, device(vendor), b).Marshal()); err != nil {
		t.Errorf("any model allowed: %v", err)
	}
}

func TestCheckRefusesDebug(t *testing.T) {
	vendor := testVendor(t, seedA)
	raw := evidence(t, device(vendor, simulated.WithDebug()), testBundle()).Marshal()
	c := testChecker(vendor)
	_, err := c.Check(raw)
	wantRule(t, err, attest.RuleDebug)

	c.Policy.AllowDebug = true
	v, err := c.Check(raw)
	if err != nil || !v.Claims.Debug {
		t.Errorf("debug allowed: %v, %+v", err, v)
	}
}

func TestCheckRefusesStaleReport(t *testing.T) {
	vendor := testVendor(t, seedA)
	for name, issued := range map[string]time.Time{
		"stale":  testNow.Add(-61 * time.Minute),
		"future": testNow.Add(attest.MaxClockSkew + time.Minute),
	} {
		d := vendor.Device(simulated.Measurement, simulated.WithClock(func() time.Time { return issued }))
		_, err := testChecker(vendor).Check(evidence(t, d, testBundle()).Marshal())
		t.Run(name, func(t *testing.T) { wantRule(t, err, attest.RuleFreshness) })
	}
}

func TestCheckRefusesExpiredBundle(t *testing.T) {
	vendor := testVendor(t, seedA)
	b := testBundle()
	b.Created = testNow.Add(-2 * time.Hour).Unix()
	b.Expires = testNow.Add(-time.Second).Unix()
	c := testChecker(vendor)
	c.Policy.MaxAge = 0 // only the bundle's own expiry applies
	_, err := c.Check(evidence(t, device(vendor), b).Marshal())
	wantOnly(t, err, attest.ErrExpired)
}

func TestCheckRefusesMalformed(t *testing.T) {
	vendor := testVendor(t, seedA)
	c := testChecker(vendor)
	_, err := c.Check([]byte("not evidence"))
	wantOnly(t, err, attest.ErrMalformed)

	e := evidence(t, device(vendor), testBundle())
	e.CPU = e.CPU[:len(e.CPU)-1]
	_, err = c.Check(e.Marshal())
	wantOnly(t, err, attest.ErrMalformed)
}

// TestPolicyFreshnessWithoutIssueTime: for kinds whose reports carry no
// time (TDX), freshness is judged by the bundle's creation time.
func TestPolicyFreshnessWithoutIssueTime(t *testing.T) {
	p := attest.Policy{Measurements: [][32]byte{{}}, MaxAge: time.Hour}
	b := testBundle() // created an hour before testNow
	c := &attest.Claims{Kind: attest.KindTDX}
	if err := p.Check(c, b, testNow); err != nil {
		t.Errorf("fresh bundle: %v", err)
	}
	var pe *attest.PolicyError
	if err := p.Check(c, b, testNow.Add(time.Minute)); !errors.As(err, &pe) || pe.Rule != attest.RuleFreshness {
		t.Errorf("stale bundle: %v, want freshness refusal", err)
	}
}

func TestParseMeasurement(t *testing.T) {
	m, err := attest.ParseMeasurement(" 0102" + string(bytes.Repeat([]byte("00"), 30)) + "\n")
	if err != nil || m[0] != 1 || m[1] != 2 {
		t.Errorf("ParseMeasurement = %x, %v", m, err)
	}
	if _, err := attest.ParseMeasurement("0102"); !errors.Is(err, attest.ErrMalformed) {
		t.Errorf("short measurement: %v", err)
	}
}

// panickingVerifier is a test double of a verifier whose parser panics on
// its input, as go-tdx-guest's did on a malformed quote.
type panickingVerifier struct{}

func (panickingVerifier) Kind() string { return attest.KindSimulated }
func (panickingVerifier) Verify([]byte, time.Time) (*attest.Claims, error) {
	panic("slice bounds out of range")
}

// TestCheckRefusesWhatPanicsAVerifier checks that evidence making a
// verifier panic is refused as malformed, without crashing the checker.
func TestCheckRefusesWhatPanicsAVerifier(t *testing.T) {
	vendor := testVendor(t, seedA)
	e := evidence(t, device(vendor), testBundle())
	c := testChecker(vendor)
	c.Verifiers = []attest.Verifier{panickingVerifier{}}
	_, err := c.Check(e.Marshal())
	wantOnly(t, err, attest.ErrMalformed)
	if !strings.Contains(err.Error(), "panicked") {
		t.Errorf("err = %v, want it to say the verifier panicked", err)
	}
}
