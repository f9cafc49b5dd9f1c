package attest_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/cocoon-go/cocoon/attest"
)

func TestEvidenceRoundTrip(t *testing.T) {
	for name, e := range map[string]*attest.Evidence{
		"minimal": {Kind: "simulated", Bundle: testBundle().Marshal(), CPU: []byte("report")},
		"full": {Kind: "tdx", Bundle: testBundle().Marshal(), CPU: []byte("quote"),
			Collateral: []byte("tcb info"), GPU: []byte("gpu evidence")},
	} {
		raw := e.Marshal()
		got, err := attest.ParseEvidence(raw)
		if err != nil {
			t.Fatalf("%s: ParseEvidence: %v", name, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("%s: round trip:\n got %+v\nwant %+v", name, got, e)
		}
		if !bytes.Equal(got.Marshal(), raw) {
			t.Errorf("%s: re-marshaled evidence differs", name)
		}
	}
}

func TestParseEvidenceRefuses(t *testing.T) {
	ok := attest.Evidence{Kind: "simulated", Bundle: []byte("b"), CPU: []byte("c")}
	valid := ok.Marshal()
	with := func(f func(*attest.Evidence)) []byte { e := ok; f(&e); return e.Marshal() }
	for name, input := range map[string][]byte{
		"empty":         nil,
		"magic":         append([]byte("CCNB"), valid[4:]...),
		"version":       append(append([]byte("CCNE"), 9), valid[5:]...),
		"truncated":     valid[:len(valid)-1],
		"trailing":      append(bytes.Clone(valid), 0),
		"huge":          make([]byte, attest.MaxEvidenceSize+1),
		"no kind":       with(func(e *attest.Evidence) { e.Kind = "" }),
		"kind syntax":   with(func(e *attest.Evidence) { e.Kind = "TDX" }),
		"long kind":     with(func(e *attest.Evidence) { e.Kind = string(bytes.Repeat([]byte("a"), 33)) }),
		"no bundle":     with(func(e *attest.Evidence) { e.Bundle = nil }),
		"no cpu":        with(func(e *attest.Evidence) { e.CPU = nil }),
		"huge bundle":   with(func(e *attest.Evidence) { e.Bundle = make([]byte, attest.MaxBundleSize+1) }),
		"length 2^32-1": append(valid[:5], 0xff, 0xff, 0xff, 0xff),
	} {
		if _, err := attest.ParseEvidence(input); !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestParseEvidenceDoesNotAlias(t *testing.T) {
	raw := (&attest.Evidence{Kind: "simulated", Bundle: []byte("bundle"), CPU: []byte("cpu")}).Marshal()
	e, err := attest.ParseEvidence(raw)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		raw[i] = 0
	}
	if string(e.Bundle) != "bundle" || string(e.CPU) != "cpu" {
		t.Error("parsed evidence aliases the input buffer")
	}
}
