package attest_test

import (
	"testing"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/simulated"
)

// TestClientRefusesRemoteEngineByDefault: a worker whose host pointed its
// engine at another machine says so in its bundle, and the default policy
// refuses it; a policy that allows remote engines accepts it.
func TestClientRefusesRemoteEngineByDefault(t *testing.T) {
	vendor := testVendor(t, seedA)
	b := testBundle()
	b.Config.Engine = "http://10.0.0.5:8000/v1"
	raw := evidence(t, device(vendor), b).Marshal()
	c := testChecker(vendor)
	_, err := c.Check(raw)
	wantRule(t, err, attest.RuleEngine)

	c.Policy.AllowRemoteEngine = true
	v, err := c.Check(raw)
	if err != nil {
		t.Fatalf("remote engine allowed by policy: %v", err)
	}
	if v.Bundle.Config.Engine != b.Config.Engine || v.ConfigDigest != b.ConfigDigest() {
		t.Errorf("verified config %q digest %x, want %q %x", v.Bundle.Config.Engine, v.ConfigDigest, b.Config.Engine, b.ConfigDigest())
	}
}

// TestClientRefusesUnlistedConfigDigest: with an allow-list of runtime
// configurations, a worker whose configuration differs in anything that
// decides where plaintext goes or what is charged is refused.
func TestClientRefusesUnlistedConfigDigest(t *testing.T) {
	vendor := testVendor(t, seedA)
	c := testChecker(vendor)
	c.Policy.ConfigDigests = [][32]byte{testBundle().ConfigDigest()}
	if _, err := c.Check(evidence(t, device(vendor), testBundle()).Marshal()); err != nil {
		t.Fatalf("listed configuration: %v", err)
	}
	for name, mutate := range map[string]func(*attest.Bundle){
		"engine port": func(b *attest.Bundle) { b.Config.Engine = "http://127.0.0.1:9999/v1" },
		"price":       func(b *attest.Bundle) { b.Config.Price.CompletionMul *= 2 },
		"upstream":    func(b *attest.Bundle) { b.Models[0].Upstream = "some-other-model" },
	} {
		b := testBundle()
		mutate(b)
		_, err := c.Check(evidence(t, device(vendor), b).Marshal())
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		wantRule(t, err, attest.RuleConfig)
	}
}

// TestSimulatedMeasurementNeverAllowsRealTEE: the allow-lists are per
// evidence kind. A node that trusts a simulated root and allows the
// simulated image must not accept a real TEE report of that image hash, and
// a real-TEE allow-list (as read from a root contract) must not let
// simulated evidence, which anyone with the dev seed can make for any
// measurement, pass.
func TestSimulatedMeasurementNeverAllowsRealTEE(t *testing.T) {
	b := testBundle()
	simOnly := attest.Policy{SimulatedMeasurements: [][32]byte{simulated.Measurement}}
	tdxClaims := &attest.Claims{Kind: attest.KindTDX, Measurement: simulated.Measurement, Issued: testNow}
	if err := simOnly.Check(tdxClaims, b, testNow); !isRule(err, attest.RuleMeasurement) {
		t.Errorf("TDX claims of the simulated image under a simulated allow-list: %v, want a measurement refusal", err)
	}

	production := [32]byte{0xaa}
	realOnly := attest.Policy{Measurements: [][32]byte{production}}
	simClaims := &attest.Claims{Kind: attest.KindSimulated, Measurement: production, Issued: testNow}
	if err := realOnly.Check(simClaims, b, testNow); !isRule(err, attest.RuleMeasurement) {
		t.Errorf("simulated claims of a production image under a real-TEE allow-list: %v, want a measurement refusal", err)
	}

	// Through the whole checker: a simulated vendor forging the production
	// measurement is refused although its root is trusted.
	vendor := testVendor(t, seedA)
	c := testChecker(vendor)
	c.Policy.Measurements = [][32]byte{production}
	_, err := c.Check(evidence(t, vendor.Device(production), b).Marshal())
	wantRule(t, err, attest.RuleMeasurement)

	both := attest.Policy{Measurements: [][32]byte{production}, SimulatedMeasurements: [][32]byte{simulated.Measurement}}
	if err := both.Check(&attest.Claims{Kind: attest.KindTDX, Measurement: production, Issued: testNow}, b, testNow); err != nil {
		t.Errorf("TDX claims of the production image: %v", err)
	}
	if err := both.Check(&attest.Claims{Kind: attest.KindSimulated, Measurement: simulated.Measurement, Issued: testNow}, b, testNow); err != nil {
		t.Errorf("simulated claims of the simulated image: %v", err)
	}
}

func isRule(err error, rule string) bool {
	pe, ok := err.(*attest.PolicyError)
	return ok && pe.Rule == rule
}
