package snp_test

import (
	"errors"
	"os"
	"testing"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/snp"
)

// FuzzParse checks that Parse, which reads reports straight from the
// network in three forms (raw, with a certificate table, attestation
// proto), never panics, and refuses what it cannot read with
// attest.ErrMalformed.
func FuzzParse(f *testing.F) {
	report, err := os.ReadFile("testdata/attestation.bin")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(report)
	f.Add(report[:len(report)-1])
	f.Add(append([]byte{0x0a, 0x04}, report[:4]...))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := snp.Parse(raw)
		if err != nil {
			if !errors.Is(err, attest.ErrMalformed) {
				t.Fatalf("Parse error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		snp.ImageHash(r)
		r.Endorsement()
		if c := r.Claims(); c.Kind != attest.KindSEVSNP {
			t.Fatalf("claims of kind %q", c.Kind)
		}
	})
}
