package simulated_test

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/simulated"
)

func TestLoadVendorPersists(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	a, err := simulated.LoadVendor(dir)
	if err != nil {
		t.Fatalf("LoadVendor (create): %v", err)
	}
	info, err := os.Stat(filepath.Join(dir, simulated.SeedFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("seed file mode %v, want 0600", perm)
	}
	b, err := simulated.LoadVendor(dir)
	if err != nil {
		t.Fatalf("LoadVendor (reload): %v", err)
	}
	if !bytes.Equal(a.RootPEM(), b.RootPEM()) {
		t.Error("reloading the same directory gave a different root")
	}
	// Evidence from the restarted vendor verifies against the old root file.
	roots, err := attest.ParseRoots(a.RootPEM())
	if err != nil {
		t.Fatal(err)
	}
	rep, err := b.Device(simulated.Measurement).Produce([64]byte{1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.NewSimulatedVerifier(roots).Verify(rep, time.Now()); err != nil {
		t.Errorf("report of reloaded vendor against saved root: %v", err)
	}

	other, err := simulated.LoadVendor(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.RootPEM(), other.RootPEM()) {
		t.Error("two directories gave the same root")
	}
}

func TestLoadVendorRefusesBadSeed(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, simulated.SeedFile), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := simulated.LoadVendor(dir); err == nil {
		t.Error("LoadVendor accepted a malformed seed file")
	}
	// A directory that cannot be created is an error.
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := simulated.LoadVendor(filepath.Join(file, "sub")); err == nil {
		t.Error("LoadVendor under a regular file succeeded")
	}
}

func TestNewVendorDeterministic(t *testing.T) {
	seed := bytes.Repeat([]byte{3}, simulated.SeedSize)
	a, err := simulated.NewVendor(seed)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := simulated.NewVendor(seed)
	if !bytes.Equal(a.RootPEM(), b.RootPEM()) {
		t.Error("same seed, different root certificate bytes")
	}
	ra, _ := a.Device(simulated.Measurement, simulated.WithClock(func() time.Time { return time.Unix(1e9, 0) })).Produce([64]byte{})
	rb, _ := b.Device(simulated.Measurement, simulated.WithClock(func() time.Time { return time.Unix(1e9, 0) })).Produce([64]byte{})
	if !bytes.Equal(ra, rb) {
		t.Error("same seed, different reports")
	}
	if _, err := simulated.NewVendor(seed[:31]); err == nil {
		t.Error("NewVendor accepted a short seed")
	}
	if !a.Root().IsCA {
		t.Error("root is not a CA")
	}
}

func TestDeviceReport(t *testing.T) {
	v, _ := simulated.NewVendor(bytes.Repeat([]byte{4}, simulated.SeedSize))
	issued := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	rd := [64]byte{9, 8, 7}
	for _, debug := range []bool{false, true} {
		opts := []simulated.Option{simulated.WithClock(func() time.Time { return issued })}
		if debug {
			opts = append(opts, simulated.WithDebug())
		}
		d := v.Device(simulated.Measurement, opts...)
		if d.Kind() != attest.KindSimulated {
			t.Errorf("Kind = %q", d.Kind())
		}
		raw, err := d.Produce(rd)
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verifier().Verify(raw, issued)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if c.Debug != debug || c.ReportData != rd || c.Measurement != simulated.Measurement || !c.Issued.Equal(issued) {
			t.Errorf("debug=%v: claims %+v", debug, c)
		}
	}
}

func TestMeasurementDocumented(t *testing.T) {
	// The doc promises SHA-256 of "cocoon simulated image v1" (computed with sha256sum).
	const want = "892f333f6d4ca3a8709e85c2a8f2345c940e61445a4f968759996029f5aff4cd"
	if got := hex.EncodeToString(simulated.Measurement[:]); got != want {
		t.Errorf("Measurement = %s, want %s", got, want)
	}
}
