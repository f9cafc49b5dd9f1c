package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/kds"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/snp"
)

const someMeasurement = "ee00dab77525aaede670f773b7ba3ed51143fd5aacbdf711e55e1c74658ef8d5"

// TestTrustCheckerKinds checks which verifiers each trust setting installs,
// and that settings that would accept nobody, or that cannot work, are
// refused when the role starts rather than on the first worker.
func TestTrustCheckerKinds(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	dataDir := t.TempDir()
	collateralDir := "../attest/tdx/testdata/tdx-2026-01/collateral"

	c, err := Trust{
		TDX:          &TDXTrust{Collateral: "pcs"},
		SEVSNP:       &SEVSNPTrust{MinTCB: "bl=2,tee=0,snp=5,ucode=68"},
		Measurements: []string{someMeasurement},
	}.NewChecker(dataDir, log)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, v := range c.Verifiers {
		kinds = append(kinds, v.Kind())
	}
	if strings.Join(kinds, ",") != attest.KindTDX+","+attest.KindSEVSNP {
		t.Errorf("verifiers for kinds %v", kinds)
	}
	for _, sub := range []string{"collateral/intel", "collateral/amd"} {
		if fi, err := os.Stat(filepath.Join(dataDir, sub)); err != nil || !fi.IsDir() {
			t.Errorf("cache directory %s not made: %v", sub, err)
		}
	}
	if _, err := (Trust{TDX: &TDXTrust{Collateral: collateralDir}, Measurements: []string{someMeasurement}}).NewChecker(dataDir, log); err != nil {
		t.Errorf("collateral directory: %v", err)
	}

	for _, tc := range []struct {
		name  string
		trust Trust
		want  string
	}{
		{"no kind", Trust{Measurements: []string{someMeasurement}}, "no evidence kind is trusted"},
		{"no measurement", Trust{TDX: &TDXTrust{}}, "no measurement is allowed for TDX or SEV-SNP"},
		{"bad measurement", Trust{TDX: &TDXTrust{}, Measurements: []string{"abc"}}, "64 hex digits"},
		{"gpu required, not verified", Trust{TDX: &TDXTrust{}, Measurements: []string{someMeasurement}, RequireGPU: true}, "require_gpu needs gpu.nras_keys"},
		{"missing collateral dir", Trust{TDX: &TDXTrust{Collateral: filepath.Join(dataDir, "none")}, Measurements: []string{someMeasurement}}, "want a directory"},
		{"bad snp roots", Trust{SEVSNP: &SEVSNPTrust{Roots: dataDir}, Measurements: []string{someMeasurement}}, "no trusted roots"},
		{"bad snp tcb", Trust{SEVSNP: &SEVSNPTrust{MinTCB: "bl=300"}, Measurements: []string{someMeasurement}}, "SEV-SNP TCB"},
		{"bad max age", Trust{TDX: &TDXTrust{}, Measurements: []string{someMeasurement}, MaxAge: "-1h"}, "max_age"},
	} {
		_, err := tc.trust.NewChecker(dataDir, log)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

// TestParseSNPTCB checks both spellings of an SEV-SNP TCB, including the
// one snp.TCBString prints.
func TestParseSNPTCB(t *testing.T) {
	want, err := kds.ComposeTCBParts(kds.TCBParts{BlSpl: 2, TeeSpl: 0, SnpSpl: 5, UcodeSpl: 68})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"bl=2,tee=0,snp=5,ucode=68", snp.TCBString(want), "snp=5 ucode=68 bl=2", fmt.Sprintf("%#x", uint64(want))} {
		got, err := ParseSNPTCB(s)
		if err != nil || got != want {
			t.Errorf("ParseSNPTCB(%q) = %#x, %v; want %#x", s, got, err, want)
		}
	}
	for _, s := range []string{"", "bl=2,xx=1", "bl=256", "0xzz", "bl"} {
		if _, err := ParseSNPTCB(s); err == nil {
			t.Errorf("ParseSNPTCB(%q) accepted", s)
		}
	}
}

// TestTrustRefusesSimulatedRootOnTON: a client or proxy paying or being paid
// on TON must not accept simulated evidence, which anyone holding a dev
// vendor seed can make.
func TestTrustRefusesSimulatedRootOnTON(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	root, meas, err := SimulatedVendor(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	trust := Trust{SimulatedRoots: []string{root}, SimulatedMeasurements: []string{meas}}
	for _, chain := range []string{"ton:testnet", "ton:mainnet", "ton:global.config.json"} {
		if _, err := trust.checkerWithRoot(t.TempDir(), &MoneyConfig{Chain: chain}, log); !errors.Is(err, ErrSimulatedOnTON) {
			t.Errorf("simulated root on %s: err = %v, want ErrSimulatedOnTON", chain, err)
		}
	}
	for _, m := range []*MoneyConfig{nil, {Chain: "local:" + t.TempDir()}} {
		if _, err := trust.checkerWithRoot(t.TempDir(), m, log); err != nil {
			t.Errorf("simulated root with money %+v: %v", m, err)
		}
	}
}

// TestTrustAllowListsPerKind: the measurement lists of a trust file reach
// the policy separately, and a simulated root without a simulated
// measurement (only real-TEE ones) is refused at start, since real-TEE
// measurements never apply to simulated evidence.
func TestTrustAllowListsPerKind(t *testing.T) {
	const simMeas = "5151515151515151515151515151515151515151515151515151515151515151"
	p, err := Trust{Measurements: []string{someMeasurement}, SimulatedMeasurements: []string{simMeas}}.Policy()
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Measurements) != 1 || fmt.Sprintf("%x", p.Measurements[0]) != someMeasurement ||
		len(p.SimulatedMeasurements) != 1 || fmt.Sprintf("%x", p.SimulatedMeasurements[0]) != simMeas {
		t.Errorf("policy lists real %x, simulated %x", p.Measurements, p.SimulatedMeasurements)
	}
	root, _, err := SimulatedVendor(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = Trust{SimulatedRoots: []string{root}, TDX: &TDXTrust{}, Measurements: []string{simMeas}}.NewChecker(t.TempDir(), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "no simulated measurement is allowed") {
		t.Errorf("simulated root with only real-TEE measurements: err = %v", err)
	}
}

func TestTrustConfigDigestsAndRemoteEngine(t *testing.T) {
	d := strings.Repeat("c4", 32)
	p, err := Trust{ConfigDigests: []string{d}, AllowRemoteEngine: true}.Policy()
	if err != nil || len(p.ConfigDigests) != 1 || fmt.Sprintf("%x", p.ConfigDigests[0]) != d || !p.AllowRemoteEngine {
		t.Errorf("policy %+v, %v", p, err)
	}
	if _, err := (Trust{ConfigDigests: []string{"c4"}}).Policy(); err == nil || !strings.Contains(err.Error(), "config digest") {
		t.Errorf("short config digest: err = %v", err)
	}
}

// TestWorkerRefusesSimulatedTEEOnTON: a worker in a simulated TEE is not
// paid on TON either.
func TestWorkerRefusesSimulatedTEEOnTON(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := SimulatedVendor(dir); err != nil {
		t.Fatal(err)
	}
	cfg := WorkerConfig{DataDir: t.TempDir(), SimulatedTEE: dir, Money: &MoneyConfig{Chain: "ton:testnet"}}
	if _, err := NewWorker(cfg, nil, slog.New(slog.DiscardHandler)); !errors.Is(err, ErrSimulatedOnTON) {
		t.Fatalf("simulated worker on ton:testnet: err = %v, want ErrSimulatedOnTON", err)
	}
}
