package seal

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"testing"

	"github.com/cocoon-go/cocoon/price"
)

// answerChunks opens raw as w and seals the chunks "c0", "c1", ... with the
// last one final.
func answerChunks(t testing.TB, raw []byte, w testWorker, n int) ([][]byte, *WorkerSession) {
	t.Helper()
	_, _, s := mustOpen(t, raw, w)
	var cs [][]byte
	for i := range n {
		c, err := s.SealChunk([]byte{'c', byte('0' + i)}, i == n-1)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs, s
}

// feed opens chunks in the order given and returns the first error.
func feed(s *ClientSession, chunks ...[]byte) error {
	for _, c := range chunks {
		if _, _, err := s.OpenChunk(c); err != nil {
			return err
		}
	}
	return nil
}

func TestChunkAttacks(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	w2 := newTestWorker(t, KEMX25519, 2)
	raw, orig := mustSeal(t, testHeader(), []byte(testPrompt), w, w2)
	c, _ := answerChunks(t, raw, w, 4)
	// Each case opens with a fresh copy of the client's session.
	fresh := func() *ClientSession { s := *orig; return &s }

	other := testHeader()
	other.RequestID[0] ^= 0xff
	otherRaw, _ := mustSeal(t, other, []byte(testPrompt), w)
	o, _ := answerChunks(t, otherRaw, w, 4)
	// The same request answered again by the second worker, and by the
	// first worker a second time (a replay or a retry).
	b, _ := answerChunks(t, raw, w2, 4)
	again, _ := answerChunks(t, raw, w, 4)

	relabel := func(chunk []byte, i uint64) []byte {
		chunk = bytes.Clone(chunk)
		binary.BigEndian.PutUint64(chunk[1:], i)
		return chunk
	}
	flip := func(chunk []byte, at int) []byte {
		chunk = bytes.Clone(chunk)
		chunk[at] ^= 1
		return chunk
	}
	cases := []struct {
		name   string
		chunks [][]byte
		want   error
	}{
		{"reorder", [][]byte{c[0], c[2], c[1], c[3]}, ErrChunkOrder},
		{"drop", [][]byte{c[0], c[1], c[3]}, ErrChunkOrder},
		{"duplicate", [][]byte{c[0], c[0]}, ErrChunkOrder},
		{"drop first", [][]byte{c[1]}, ErrChunkOrder},
		{"drop and relabel", [][]byte{c[0], relabel(c[2], 1)}, ErrDecrypt},
		{"relabel reorder", [][]byte{c[0], relabel(c[2], 1), relabel(c[1], 2)}, ErrDecrypt},
		{"splice other request", [][]byte{c[0], o[1]}, ErrDecrypt},
		{"splice other request first", [][]byte{o[0]}, ErrDecrypt},
		{"splice other worker", [][]byte{c[0], b[1]}, ErrDecrypt},
		{"splice replayed answer", [][]byte{c[0], again[1]}, ErrDecrypt},
		{"mark final early", [][]byte{c[0], flip(c[1], 0)}, ErrDecrypt},
		{"unmark final", [][]byte{c[0], c[1], c[2], flip(c[3], 0)}, ErrDecrypt},
		{"flags 2", [][]byte{c[0], func() []byte { x := bytes.Clone(c[1]); x[0] = 2; return x }()}, ErrMalformed},
		{"flip salt", [][]byte{flip(c[0], chunkHeaderSize)}, ErrDecrypt},
		{"flip ciphertext", [][]byte{c[0], flip(c[1], chunkHeaderSize)}, ErrDecrypt},
		{"flip tag", [][]byte{c[0], flip(c[1], len(c[1])-1)}, ErrDecrypt},
		{"short", [][]byte{c[0][:chunkHeaderSize+saltSize+tagSize-1]}, ErrMalformed},
		{"empty", [][]byte{{}}, ErrMalformed},
		{"after final", [][]byte{c[0], c[1], c[2], c[3], c[3]}, ErrFinished},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := fresh()
			wantErr(t, feed(cs, tc.chunks...), tc.want)
			// After a failure the session trusts nothing, not even the
			// chunk that was due.
			if tc.want != ErrFinished && feed(cs, c[cs.next]) == nil {
				t.Fatal("session accepted a chunk after an error")
			}
		})
	}
	t.Run("in order", func(t *testing.T) {
		cs := fresh()
		if err := feed(cs, c...); err != nil || !cs.Finished() {
			t.Fatalf("err %v, finished %v", err, cs.Finished())
		}
	})
}

// A stream that stops before its final chunk is truncated: Finished stays
// false and the receipt is refused, on both sides.
func TestTruncation(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	raw, cs := mustSeal(t, testHeader(), []byte(testPrompt), w)
	c, ws := answerChunks(t, raw, w, 3)
	if err := feed(cs, c[:2]...); err != nil {
		t.Fatal(err)
	}
	if cs.Finished() {
		t.Fatal("finished without the final chunk")
	}
	r, err := ws.Receipt(price.Usage{PromptTokens: 1, CompletionTokens: 3}, price.Default, time1)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sign(w.sign); err != nil {
		t.Fatal(err)
	}
	wantErr(t, cs.CheckReceipt(r, w.sign.Public().(ed25519.PublicKey)), ErrTruncated)

	_, _, unfinished := mustOpen(t, raw, w)
	if _, err := unfinished.SealChunk([]byte("x"), false); err != nil {
		t.Fatal(err)
	}
	_, err = unfinished.Receipt(price.Usage{}, price.Default, time1)
	wantErr(t, err, ErrTruncated)
}

func TestSealChunkLimits(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	raw, cs := mustSeal(t, testHeader(), []byte(testPrompt), w)
	_, _, ws := mustOpen(t, raw, w)
	_, err := ws.SealChunk(make([]byte, MaxChunk+1), false)
	wantErr(t, err, ErrTooLarge)
	// The largest chunk, the first one with its salt, fits in a record.
	c, err := ws.SealChunk(make([]byte, MaxChunk), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != MaxRecord {
		t.Fatalf("largest chunk is %d bytes, want %d", len(c), MaxRecord)
	}
	if err := feed(cs, c); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.SealChunk(nil, true); err != nil {
		t.Fatal(err)
	}
	_, err = ws.SealChunk(nil, true)
	wantErr(t, err, ErrFinished)
}

// Two sessions for the same request, even on the same worker, never seal
// under the same key and nonce: the same plaintext comes out different.
func TestResponseKeyPerSession(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	raw, _ := mustSeal(t, testHeader(), []byte(testPrompt), w)
	_, _, s1 := mustOpen(t, raw, w)
	_, _, s2 := mustOpen(t, raw, w)
	for i := range 2 {
		a, _ := s1.SealChunk([]byte("same answer"), false)
		b, _ := s2.SealChunk([]byte("same answer"), false)
		at := chunkHeaderSize
		if i == 0 {
			at += saltSize
		}
		if bytes.Equal(a[at:], b[at:]) {
			t.Fatalf("chunk %d: same ciphertext from two sessions", i)
		}
	}
}

func TestResponseHasher(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	raw, cs := mustSeal(t, testHeader(), []byte(testPrompt), w)
	c, ws := answerChunks(t, raw, w, 3)
	var proxy ResponseHasher
	empty := proxy.Sum()
	for _, x := range c {
		proxy.Add(x)
	}
	if err := feed(cs, c...); err != nil {
		t.Fatal(err)
	}
	if proxy.Sum() != ws.ResponseHash() || proxy.Sum() != cs.ResponseHash() || proxy.Sum() == empty {
		t.Fatal("response hashes differ")
	}
	// Where one chunk ends and the next begins is part of the hash.
	var a, b ResponseHasher
	a.Add([]byte("ab"))
	a.Add([]byte("c"))
	b.Add([]byte("a"))
	b.Add([]byte("bc"))
	if a.Sum() == b.Sum() {
		t.Fatal("chunk boundaries not hashed")
	}
}

// An error detail is sealed as the final chunk and opened only by the
// client; a chunk that is not final is not an error detail.
func TestSealedErrorDetail(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	raw, cs := mustSeal(t, testHeader(), []byte(testPrompt), w)
	_, _, ws := mustOpen(t, raw, w)
	first, _ := ws.SealChunk([]byte("token"), false)
	sealed, err := ws.SealError([]byte(`{"message":"` + testSecret + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("marmalade")) {
		t.Fatal("error detail sealed in the clear")
	}
	if err := feed(cs, first); err != nil {
		t.Fatal(err)
	}
	detail, err := cs.OpenError(sealed)
	if err != nil || !bytes.Contains(detail, []byte("marmalade")) {
		t.Fatalf("OpenError = %q, %v", detail, err)
	}

	raw, cs = mustSeal(t, testHeader(), []byte(testPrompt), w)
	_, _, ws = mustOpen(t, raw, w)
	notFinal, _ := ws.SealChunk([]byte("token"), false)
	_, err = cs.OpenError(notFinal)
	wantErr(t, err, ErrMalformed)
}
