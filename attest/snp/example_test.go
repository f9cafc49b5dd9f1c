package snp_test

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/cocoon-go/cocoon/attest/collateral"
	"github.com/cocoon-go/cocoon/attest/snp"
)

// Verify go-sev-guest's sample report, signed by a Milan VCEK, against AMD's
// embedded roots, and print its image hash.
func ExampleVerifySignature() {
	raw, _ := os.ReadFile("testdata/attestation.bin")
	vcek, _ := os.ReadFile("testdata/vcek.der")
	r, err := snp.Parse(raw)
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, time.January, 20, 0, 0, 0, 0, time.UTC)
	if err := snp.VerifySignature(r, vcek, snp.AMDRoots(), now); err != nil {
		panic(err)
	}
	fmt.Printf("signed by %v; debug %v; image hash %x\n", r.Signer, r.Debug(), snp.ImageHash(r))
	// Output: signed by VCEK; debug true; image hash 1e0896744564c4eea47b79c7937709c75421117cb3cd839af6e573b560c101cb
}

// A verifier fetches the VCEK of reports that come without one from AMD KDS,
// keeping it in a cache directory until it expires.
func ExampleVerifier_WithKDS() {
	dir, _ := os.MkdirTemp("", "kds")
	defer os.RemoveAll(dir)
	cache, err := collateral.New(dir, snp.CacheOptions(&http.Client{Timeout: 30 * time.Second}))
	if err != nil {
		panic(err)
	}
	v := snp.NewVerifier(nil).WithKDS(cache.SEV())
	fmt.Println(v.Kind())
	// Output: sev-snp
}
