package snp_test

import (
	"os"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/attest/snp"
)

// BenchmarkVerify measures what a client pays, once per worker key bundle,
// to verify the real SEV-SNP sample: parse, signature, VCEK chain to AMD's
// roots.
//
//	go test ./attest/snp -run x -bench Verify -count 5
func BenchmarkVerify(b *testing.B) {
	report, err := os.ReadFile("testdata/attestation.bin")
	if err != nil {
		b.Fatal(err)
	}
	vcek, err := os.ReadFile("testdata/vcek.der")
	if err != nil {
		b.Fatal(err)
	}
	roots := snp.AMDRoots()
	now := time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		r, err := snp.Parse(report)
		if err != nil {
			b.Fatal(err)
		}
		if err := snp.VerifySignature(r, vcek, roots, now); err != nil {
			b.Fatal(err)
		}
	}
}
