package tdx_test

import (
	"fmt"
	"os"
	"time"

	"github.com/cocoon-go/cocoon/attest"
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
