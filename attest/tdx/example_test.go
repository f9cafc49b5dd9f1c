package tdx_test

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/collateral"
	"github.com/cocoon-go/cocoon/attest/tdx"
)

// A client verifies a real TDX quote offline against saved Intel PCS
// collateral, with the clock pinned to the collateral's date, and applies a
// policy naming the image hash it allows.
func Example() {
	raw, _ := os.ReadFile("testdata/tdx-2026-01/quote.bin")
	at := time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)

	claims, err := tdx.NewVerifier(tdx.Dir("testdata/tdx-2026-01/collateral")).Verify(raw, at)
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	allowed, _ := attest.ParseMeasurement("ee00dab77525aaede670f773b7ba3ed51143fd5aacbdf711e55e1c74658ef8d5")
	policy := tdx.Policy{ReportData: claims.ReportData, Measurements: [][32]byte{allowed}}
	fmt.Println("TCB:", claims.TCB)
	fmt.Println("policy:", policy.Check(claims))
	// Output:
	// TCB: UpToDate
	// policy: <nil>
}

// A worker ships a snapshot of Intel's collateral with its quote; a client
// with no access to Intel PCS verifies the quote with it alone.
func ExampleSnapshot() {
	raw, _ := os.ReadFile("testdata/tdx-2026-01/quote.bin")
	snap, err := tdx.Snapshot(raw, tdx.Dir("testdata/tdx-2026-01/collateral")) // a worker would use tdx.NewPCS
	if err != nil {
		panic(err)
	}
	ev := &attest.Evidence{Kind: attest.KindTDX, CPU: raw, Collateral: snap}
	at := time.Date(2026, 1, 20, 0, 0, 0, 0, time.UTC)
	claims, err := tdx.NewVerifier(nil).VerifyEvidence(ev, at)
	if err != nil {
		panic(err)
	}
	fmt.Println("TCB:", claims.TCB)
	// Output: TCB: UpToDate
}

// A verifier fetches collateral from Intel PCS (or a PCCS, given its
// origin) and keeps it in a cache directory, from which it keeps verifying
// when Intel cannot be reached.
func ExampleNewPCS() {
	dir, _ := os.MkdirTemp("", "pcs")
	defer os.RemoveAll(dir)
	cache, err := collateral.New(dir, tdx.CacheOptions(&http.Client{Timeout: 30 * time.Second}))
	if err != nil {
		panic(err)
	}
	v := tdx.NewVerifier(tdx.NewPCS("", cache))
	fmt.Println(v.Kind())
	// Output: tdx
}
