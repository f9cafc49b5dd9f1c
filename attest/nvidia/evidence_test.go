package nvidia_test

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/nvidia"
	"github.com/cocoon-go/cocoon/attest/nvidia/nvidiatest"
	"github.com/cocoon-go/cocoon/internal/binenc"
)

func sampleEvidence() *nvidia.Evidence {
	return &nvidia.Evidence{
		Overall: "aGVhZA.Ym9keQ.c2ln",
		GPUs: []nvidia.Detached{
			{Name: "GPU-1", Token: "eyJ.e30.AAA-_"},
			{Name: "GPU-0", Token: "eyJ.e30.BBB"},
		},
	}
}

func TestEvidenceRoundTrip(t *testing.T) {
	raw := sampleEvidence().Marshal()
	got, err := nvidia.ParseEvidence(raw)
	if err != nil {
		t.Fatalf("ParseEvidence: %v", err)
	}
	want := sampleEvidence()
	want.GPUs[0], want.GPUs[1] = want.GPUs[1], want.GPUs[0] // Marshal sorts by name
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if !bytes.Equal(got.Marshal(), raw) {
		t.Error("re-marshaled evidence differs")
	}
}

// TestEvidenceLayout pins the encoding against the documented layout.
func TestEvidenceLayout(t *testing.T) {
	e := &nvidia.Evidence{Overall: "a.b.c", GPUs: []nvidia.Detached{{Name: "GPU-0", Token: "d.e.f"}}}
	want := []byte("CCNV\x01" + "\x00\x00\x00\x05a.b.c" + "\x00\x01" + "\x00\x00\x00\x05GPU-0" + "\x00\x00\x00\x05d.e.f")
	if got := e.Marshal(); !bytes.Equal(got, want) {
		t.Errorf("Marshal = %q, want %q", got, want)
	}
}

func TestParseEvidenceRefuses(t *testing.T) {
	good := sampleEvidence().Marshal()
	gpu := func(name, tok string) []byte {
		return binenc.AppendBytes(binenc.AppendBytes(nil, []byte(name)), []byte(tok))
	}
	head := func(n uint16) []byte {
		b := binenc.AppendMagic(nil, "CCNV", 1)
		b = binenc.AppendBytes(b, []byte("a.b.c"))
		return binenc.AppendU16(b, n)
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for name, p := range map[string][]byte{
		"empty":          nil,
		"wrong magic":    append([]byte("CCNE"), good[4:]...),
		"wrong version":  append([]byte("CCNV\x02"), good[5:]...),
		"truncated":      good[:len(good)-1],
		"trailing":       append(append([]byte(nil), good...), 0),
		"no gpus":        head(0),
		"too many gpus":  head(nvidia.MaxGPUs + 1),
		"unsorted":       cat(head(2), gpu("GPU-1", "x.y.z"), gpu("GPU-0", "x.y.z")),
		"duplicate":      cat(head(2), gpu("GPU-0", "x.y.z"), gpu("GPU-0", "x.y.z")),
		"empty name":     cat(head(1), gpu("", "x.y.z")),
		"bad name":       cat(head(1), gpu("GPU 0", "x.y.z")),
		"empty token":    cat(head(1), gpu("GPU-0", "")),
		"bad token":      cat(head(1), gpu("GPU-0", "x.y.z=")),
		"overall binary": cat(binenc.AppendBytes(binenc.AppendMagic(nil, "CCNV", 1), []byte{0xff}), []byte{0, 1}, gpu("GPU-0", "x.y.z")),
		"oversized":      make([]byte, nvidia.MaxEvidenceSize+1),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := nvidia.ParseEvidence(p); !errors.Is(err, attest.ErrMalformed) {
				t.Errorf("ParseEvidence = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestParseNRASResponse(t *testing.T) {
	body, err := os.ReadFile("testdata/nras-response-h100.json")
	if err != nil {
		t.Fatal(err)
	}
	e, err := nvidia.ParseNRASResponse(body)
	if err != nil {
		t.Fatalf("ParseNRASResponse: %v", err)
	}
	if len(e.GPUs) != 1 || e.GPUs[0].Name != "GPU-0" || !strings.HasPrefix(e.Overall, "eyJ") {
		t.Errorf("evidence = %+v", e)
	}
	for name, body := range map[string]string{
		"not json":       "<html>",
		"object":         `{"message":"x"}`,
		"one element":    `[["JWT","a.b.c"]]`,
		"not JWT":        `[["JWS","a.b.c"],{"GPU-0":"a.b.c"}]`,
		"detached array": `[["JWT","a.b.c"],["a.b.c"]]`,
		"no gpus":        `[["JWT","a.b.c"],{}]`,
		"bad token":      `[["JWT","a.b.c"],{"GPU-0":"a b"}]`,
	} {
		if _, err := nvidia.ParseNRASResponse([]byte(body)); !errors.Is(err, attest.ErrMalformed) {
			t.Errorf("%s: ParseNRASResponse = %v, want ErrMalformed", name, err)
		}
	}
}

// FuzzParseEvidence checks that ParseEvidence never panics and accepts only
// canonical encodings: whatever it accepts marshals back to the same bytes.
func FuzzParseEvidence(f *testing.F) {
	f.Add(sampleEvidence().Marshal())
	s := nvidiatest.NewSigner("k1", atTestNow)
	f.Add(s.Evidence(testNonce, 2, nvidiatest.Edits{}).Marshal())
	if body, err := os.ReadFile("testdata/nras-response-h100.json"); err == nil {
		if e, err := nvidia.ParseNRASResponse(body); err == nil {
			f.Add(e.Marshal())
		}
	}
	f.Add([]byte("CCNV\x01"))
	f.Fuzz(func(t *testing.T, p []byte) {
		e, err := nvidia.ParseEvidence(p)
		if err != nil {
			if !errors.Is(err, attest.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !bytes.Equal(e.Marshal(), p) {
			t.Fatalf("accepted a non-canonical encoding %q", p)
		}
	})
}
