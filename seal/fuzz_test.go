package seal

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cocoon-go/cocoon/price"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the seed corpora under testdata/fuzz")

// fuzzWorkers are the workers the fuzz seeds are sealed to; their keys are
// fixed, so the committed seeds stay valid.
func fuzzWorkers(t testing.TB) []testWorker {
	return []testWorker{newTestWorker(t, KEMX25519, 1), newTestWorker(t, KEMMLKEM768X25519, 2)}
}

// TestFuzzCorpus checks that the committed seeds under testdata/fuzz are
// still valid, so a format change cannot leave the fuzzers seeded with junk.
// With -update-corpus it writes fresh ones.
func TestFuzzCorpus(t *testing.T) {
	ws := fuzzWorkers(t)
	if !*updateCorpus {
		for _, seed := range []struct {
			name string
			to   []testWorker
		}{{"x25519", ws[:1]}, {"mixed", ws}} {
			raw := readSeed(t, "FuzzOpen", seed.name)
			for _, w := range seed.to {
				if _, _, _, err := Open(raw, w.id, w.key); err != nil {
					t.Fatalf("FuzzOpen seed %s: %v", seed.name, err)
				}
			}
		}
		if _, err := ParseReceipt(readSeed(t, "FuzzParseReceipt", "signed")); err != nil {
			t.Fatalf("FuzzParseReceipt seed: %v", err)
		}
		return
	}
	one, _ := mustSeal(t, testHeader(), []byte(testPrompt), ws[0])
	h := testHeader()
	h.Stream, h.Endpoint, h.MaxTokens = false, EndpointCompletions, 0
	mixed, cs := mustSeal(t, h, []byte(`{"prompt":"hi"}`), ws...)
	_, _, s := mustOpen(t, mixed, ws[0])
	var stream bytes.Buffer
	for i, p := range []string{"he", "llo"} {
		c, err := s.SealChunk([]byte(p), i == 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := cs.OpenChunk(c); err != nil {
			t.Fatal(err)
		}
		WriteRecord(&stream, RecordChunk, c)
	}
	r, err := s.Receipt(price.Usage{PromptTokens: 5, CompletionTokens: 2}, price.Default, time1)
	if err != nil {
		t.Fatal(err)
	}
	unsigned := r.Marshal()
	if err := r.Sign(ws[0].sign); err != nil {
		t.Fatal(err)
	}
	WriteRecord(&stream, RecordReceipt, r.Marshal())
	var failed bytes.Buffer
	WriteRecord(&failed, RecordError, []byte(`{"error":{"message":"worker gone","type":"upstream"}}`))

	seeds := map[string]map[string][]byte{
		"FuzzParseEnvelope": {"x25519": one, "mixed": mixed, "empty": nil, "magic": []byte("CCNE\x02")},
		"FuzzOpen":          {"x25519": one, "mixed": mixed, "truncated": mixed[:len(mixed)/2]},
		"FuzzRecordReader":  {"stream": stream.Bytes(), "error": failed.Bytes(), "partial": stream.Bytes()[:7], "empty": nil},
		"FuzzParseReceipt":  {"signed": r.Marshal(), "unsigned": unsigned},
	}
	for target, files := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// readSeed reads a committed seed file.
func readSeed(t testing.TB, target, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", target, name))
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if _, err := fmt.Sscanf(string(b), "go test fuzz v1\n[]byte(%q)\n", &s); err != nil {
		t.Fatalf("%s/%s: %v", target, name, err)
	}
	return []byte(s)
}

// A parsed envelope re-encodes to exactly its input: one encoding per value.
func FuzzParseEnvelope(f *testing.F) {
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := ParseEnvelope(raw)
		if err != nil {
			return
		}
		again := append(e.appendHead(nil, len(e.Body)), e.Body...)
		if again = append(again, e.Signature...); !bytes.Equal(again, raw) {
			t.Fatalf("re-encoded %x, parsed %x", again, raw)
		}
		e.VerifySignature()
	})
}

// Open never panics, and what it opens verified.
func FuzzOpen(f *testing.F) {
	ws := fuzzWorkers(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, w := range ws {
			env, _, s, err := Open(raw, w.id, w.key)
			if err != nil {
				continue
			}
			if err := env.VerifySignature(); err != nil {
				t.Fatalf("opened an envelope whose signature fails: %v", err)
			}
			if _, err := s.SealChunk([]byte("x"), true); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// The records read re-encode to the bytes consumed, and io.EOF comes only at
// the end of the input.
func FuzzRecordReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		rr := NewRecordReader(bytes.NewReader(data))
		var again bytes.Buffer
		for {
			typ, p, err := rr.Next()
			if err == io.EOF {
				if again.Len() != len(data) {
					t.Fatalf("io.EOF after %d of %d bytes", again.Len(), len(data))
				}
				return
			}
			if err != nil {
				if again.Len() == len(data) {
					t.Fatalf("error at the end of the input: %v", err)
				}
				return
			}
			if err := WriteRecord(&again, typ, p); err != nil {
				t.Fatalf("read a record that cannot be written: %v", err)
			}
			if !bytes.HasPrefix(data, again.Bytes()) {
				t.Fatal("records read do not re-encode to the input")
			}
		}
	})
}

// A parsed receipt marshals to exactly its input.
func FuzzParseReceipt(f *testing.F) {
	pub := pubOf(fuzzWorkers(f)[0])
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReceipt(b)
		if err != nil {
			return
		}
		if again := r.Marshal(); !bytes.Equal(again, b) {
			t.Fatalf("marshalled %x, parsed %x", again, b)
		}
		r.Verify(pub)
	})
}
