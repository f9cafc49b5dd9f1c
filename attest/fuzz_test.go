package attest

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

// Seed corpora live in testdata/fuzz/<FuzzName>/; TestFuzzCorpus (in
// corpus_test.go) regenerates them with -update-corpus. Run a target with
// e.g. go test -run '^$' -fuzz '^FuzzParseEvidence$' -fuzztime 20s -fuzzminimizetime 200x ./attest
// (the default minimization, up to a minute per new input, stalls FuzzCheck,
// whose every run verifies signatures).

func seedBundle() *Bundle {
	return &Bundle{
		HPKEKey:    []byte{0, 0x20, 1, 2, 3},
		SigningKey: make([]byte, 32),
		Models:     []Model{{Name: "m", Hash: string(bytes.Repeat([]byte("ab"), 32))}, {Name: "n"}},
		Created:    1,
		Expires:    2,
	}
}

func FuzzParseBundle(f *testing.F) {
	f.Add(seedBundle().Marshal())
	f.Add([]byte(bundleMagic + "\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := ParseBundle(data)
		if err != nil {
			return
		}
		// Only canonical, valid bundles parse, so the input's hash is the key ID.
		if !bytes.Equal(b.Marshal(), data) {
			t.Fatalf("parsed bundle re-marshals differently")
		}
		if b.Hash() != sha256.Sum256(data) {
			t.Fatalf("Hash differs from SHA-256 of the input")
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("parsed bundle does not validate: %v", err)
		}
	})
}

func FuzzParseEvidence(f *testing.F) {
	f.Add((&Evidence{Kind: KindSimulated, Bundle: seedBundle().Marshal(), CPU: []byte{1}}).Marshal())
	f.Add((&Evidence{Kind: KindTDX, Bundle: []byte{1}, CPU: []byte{2}, Collateral: []byte{3}, GPU: []byte{4}}).Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEvidence(data)
		if err != nil {
			return
		}
		if !bytes.Equal(e.Marshal(), data) {
			t.Fatalf("parsed evidence re-marshals differently")
		}
	})
}

func FuzzParseSimulatedReport(f *testing.F) {
	r := &SimulatedReport{Debug: true, Issued: 1, Signature: make([]byte, 64), Certificates: [][]byte{{0x30, 0}}}
	f.Add(r.Marshal())
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseSimulatedReport(data)
		if err != nil {
			return
		}
		if !bytes.Equal(r.Marshal(), data) {
			t.Fatalf("parsed report re-marshals differently")
		}
	})
}
