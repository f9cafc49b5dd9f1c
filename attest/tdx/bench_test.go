package tdx

import (
	"os"
	"testing"

	"github.com/cocoon-go/cocoon/attest"
)

// BenchmarkVerify measures what a client pays, once per worker key bundle
// (attest.Cache keeps the verdict), to verify the real quote: parse and
// signature alone, then the whole verifier with collateral from a directory
// and from a snapshot shipped in the evidence.
//
//	go test ./attest/tdx -run x -bench Verify -count 5
func BenchmarkVerify(b *testing.B) {
	raw, err := os.ReadFile("testdata/tdx-2026-01/quote.bin")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("signature", func(b *testing.B) {
		for b.Loop() {
			q, err := Parse(raw)
			if err != nil {
				b.Fatal(err)
			}
			if err := VerifySignature(q, nil, pinned); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("collateral=dir", func(b *testing.B) {
		v := NewVerifier(Dir(collateralDir))
		for b.Loop() {
			if _, err := v.Verify(raw, pinned); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("collateral=snapshot", func(b *testing.B) {
		e := &attest.Evidence{Kind: attest.KindTDX, CPU: raw, Collateral: realSnapshot(b)}
		v := NewVerifier(nil)
		for b.Loop() {
			if _, err := v.VerifyEvidence(e, pinned); err != nil {
				b.Fatal(err)
			}
		}
	})
}
