package tdx

import (
	"errors"
	"os"
	"testing"

	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/cocoon-go/cocoon/attest"
)

// FuzzParse checks that Parse, which reads quotes straight from the
// network, never panics, and refuses what it cannot read with
// attest.ErrMalformed.
func FuzzParse(f *testing.F) {
	real, err := os.ReadFile("testdata/tdx-2026-01/quote.bin")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add(testdata.RawQuote)
	f.Add(real[:len(real)/2])
	f.Add([]byte{4, 0, 2, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		q, err := Parse(raw)
		if err != nil {
			if !errors.Is(err, attest.ErrMalformed) {
				t.Fatalf("Parse error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		ImageHash(q) // every parsed quote has its registers
		if q.Claims(&Collateral{}) == nil {
			t.Fatal("no claims from a parsed quote")
		}
	})
}

// TestParseRefusesOversizedQEAuthData is the input FuzzParse found that
// makes go-tdx-guest's abi package panic: a QE authentication data size
// beyond the quote. Parse must refuse it, not crash.
func TestParseRefusesOversizedQEAuthData(t *testing.T) {
	raw, err := os.ReadFile("testdata/tdx-2026-01/quote.bin")
	if err != nil {
		t.Fatal(err)
	}
	// v4: header 48, TD report 584, signed data size 4, signature 64,
	// attestation key 64, certification data type 2 and size 4, QE report
	// 384 and its signature 64, then the QE auth data size (uint16 LE).
	const authSize = 48 + 584 + 4 + 64 + 64 + 2 + 4 + 384 + 64
	raw[authSize], raw[authSize+1] = 0xff, 0xff
	if _, err := Parse(raw); !errors.Is(err, attest.ErrMalformed) {
		t.Fatalf("Parse = %v, want ErrMalformed", err)
	}
}
