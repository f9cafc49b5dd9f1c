package attest_test

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/simulated"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the fuzz seed corpora in testdata/fuzz")

// corpus returns the committed fuzz seeds: valid encodings made with the
// simulated TEE (named valid-*) and a few broken ones.
func corpus(t *testing.T) map[string]map[string][]byte {
	vendor := testVendor(t, seedA)
	e := evidence(t, device(vendor), testBundle())
	full := *e
	full.Collateral, full.GPU = []byte("collateral"), []byte("gpu")
	return map[string]map[string][]byte{
		"FuzzParseEvidence": {
			"valid-simulated": e.Marshal(),
			"valid-full":      full.Marshal(),
			"truncated":       e.Marshal()[:40],
		},
		"FuzzParseBundle": {
			"valid-bundle": testBundle().Marshal(),
			"unsorted":     unsortedBundle(),
		},
		"FuzzParseSimulatedReport": {
			"valid-report": e.CPU,
			"valid-debug":  evidence(t, device(vendor, simulated.WithDebug()), testBundle()).CPU,
		},
		"FuzzCheck": {
			"valid-simulated": e.Marshal(),
		},
	}
}

// TestFuzzCorpus checks that the committed seeds are what corpus makes (so
// the valid ones reach deep into the parsers), or rewrites them with
// -update-corpus.
func TestFuzzCorpus(t *testing.T) {
	for target, seeds := range corpus(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, data := range seeds {
			path := filepath.Join(dir, name)
			if *updateCorpus {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				enc := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
				if err := os.WriteFile(path, []byte(enc), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := readSeed(path)
			if err != nil {
				t.Errorf("%v (regenerate with go test -run TestFuzzCorpus -update-corpus)", err)
				continue
			}
			if strings.HasPrefix(name, "valid-") && !bytes.Equal(got, data) {
				t.Errorf("%s is stale (regenerate with -update-corpus)", path)
			}
		}
	}
}

func readSeed(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, ok := strings.CutPrefix(string(raw), "go test fuzz v1\n[]byte(")
	s, ok2 := strings.CutSuffix(strings.TrimSpace(s), ")")
	if !ok || !ok2 {
		return nil, fmt.Errorf("%s: not a fuzz seed of one []byte", path)
	}
	q, err := strconv.Unquote(s)
	return []byte(q), err
}

// FuzzCheck runs the whole Checker, with a trusted dev vendor, on arbitrary
// evidence: it must never panic, and whatever it accepts must be bound to
// its bundle.
func FuzzCheck(f *testing.F) {
	vendor := testVendor(f, seedA)
	f.Add(evidence(f, device(vendor), testBundle()).Marshal())
	c := testChecker(vendor)
	c.Policy.MaxAge = 0
	c.Now = func() time.Time { return testNow }
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := c.Check(data)
		if err != nil {
			return
		}
		e, err := attest.ParseEvidence(data)
		if err != nil {
			t.Fatalf("accepted evidence that does not parse: %v", err)
		}
		if v.KeyID != sha256.Sum256(e.Bundle) || v.Claims.ReportData != attest.ReportData(v.KeyID) {
			t.Fatalf("accepted evidence not bound to its bundle")
		}
	})
}
