package seal

import (
	"bytes"
	"crypto/ed25519"
	"reflect"
	"testing"

	"github.com/cocoon-go/cocoon/price"
)

// servedReceipt runs one request to the end and returns the client session
// and the worker's signed receipt.
func servedReceipt(t testing.TB, w testWorker, others ...testWorker) (*ClientSession, *WorkerSession, *Receipt) {
	t.Helper()
	raw, cs := mustSeal(t, testHeader(), []byte(testPrompt), append([]testWorker{w}, others...)...)
	c, ws := answerChunks(t, raw, w, 2)
	if err := feed(cs, c...); err != nil {
		t.Fatal(err)
	}
	r, err := ws.Receipt(price.Usage{PromptTokens: 30, CachedTokens: 10, CompletionTokens: 2}, price.Default, time1)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Sign(w.sign); err != nil {
		t.Fatal(err)
	}
	return cs, ws, r
}

func pubOf(w testWorker) ed25519.PublicKey { return w.sign.Public().(ed25519.PublicKey) }

func TestReceipt(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	cs, ws, r := servedReceipt(t, w)
	if err := r.Verify(pubOf(w)); err != nil {
		t.Fatal(err)
	}
	if err := cs.CheckReceipt(r, pubOf(w)); err != nil {
		t.Fatal(err)
	}
	h := testHeader()
	want := Receipt{
		RequestID: h.RequestID, HeaderHash: h.Hash(), RequestHash: cs.RequestHash(),
		ResponseHash: ws.ResponseHash(), Worker: w.id, Model: h.Model,
		Usage: price.Usage{PromptTokens: 30, CachedTokens: 10, CompletionTokens: 2},
		Price: price.Default, Cost: price.Cost{Prompt: 11000, Completion: 2000, Total: 13000},
		Time: time1.Unix(), Signature: r.Signature,
	}
	if !reflect.DeepEqual(*r, want) {
		t.Fatalf("receipt\n%+v, want\n%+v", *r, want)
	}
	b := r.Marshal()
	r2, err := ParseReceipt(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, r2) {
		t.Fatalf("parsed %+v, want %+v", r2, r)
	}
	// Another worker's key does not verify it.
	wantErr(t, r.Verify(pubOf(newTestWorker(t, KEMX25519, 2))), ErrSignature)
	wantErr(t, r.Verify(pubOf(w)[:31]), ErrMalformed)
}

// Flipping any bit of a marshalled receipt makes it fail to parse or to verify.
func TestReceiptFlipEveryBit(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	_, _, r := servedReceipt(t, w)
	b := r.Marshal()
	for i := range b {
		for bit := range 8 {
			bad := bytes.Clone(b)
			bad[i] ^= 1 << bit
			r2, err := ParseReceipt(bad)
			if err == nil {
				err = r2.Verify(pubOf(w))
			}
			if err == nil {
				t.Fatalf("byte %d bit %d: receipt still verifies", i, bit)
			}
		}
	}
}

func TestReceiptWrongCost(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	_, _, r := servedReceipt(t, w)
	r.Cost.Total++
	wantErr(t, r.Sign(w.sign), ErrCost) // a worker does not sign it...
	// ...and a receipt signed with a wrong cost does not verify.
	r.Signature = ed25519.Sign(w.sign, signedMessage(tagReceipt, r.appendUnsigned(nil)))
	wantErr(t, r.Verify(pubOf(w)), ErrCost)
	// Nor one whose cost overflows.
	r.Usage.CompletionTokens = 1 << 62
	r.Signature = ed25519.Sign(w.sign, signedMessage(tagReceipt, r.appendUnsigned(nil)))
	wantErr(t, r.Verify(pubOf(w)), ErrCost)
	wantErr(t, r.Sign(ed25519.PrivateKey{1, 2, 3}), ErrMalformed)
}

// The client refuses a validly signed receipt about something else.
func TestCheckReceiptMismatch(t *testing.T) {
	w, w2 := newTestWorker(t, KEMX25519, 1), newTestWorker(t, KEMX25519, 2)
	changes := map[string]func(*Receipt){
		"request id":    func(r *Receipt) { r.RequestID[0] ^= 1 },
		"header hash":   func(r *Receipt) { r.HeaderHash[0] ^= 1 },
		"request hash":  func(r *Receipt) { r.RequestHash[0] ^= 1 },
		"response hash": func(r *Receipt) { r.ResponseHash[0] ^= 1 },
		"model":         func(r *Receipt) { r.Model = "other" },
		"worker":        func(r *Receipt) { r.Worker[0] ^= 1 },
		"price":         func(r *Receipt) { r.Price.PerToken *= 2 },
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			cs, _, r := servedReceipt(t, w, w2)
			change(r)
			r.Cost, _ = r.Price.Cost(r.Usage)
			if err := r.Sign(w.sign); err != nil {
				t.Fatal(err)
			}
			wantErr(t, cs.CheckReceipt(r, pubOf(w)), ErrReceipt)
		})
	}

	// A worker does not make a receipt the client would refuse.
	w3 := newTestWorker(t, KEMX25519, 3)
	raw, _ := mustSeal(t, testHeader(), nil, w3)
	_, ws := answerChunks(t, raw, w3, 1)
	dear := price.Default
	dear.PerToken *= 2
	_, err := ws.Receipt(price.Usage{CompletionTokens: 1}, dear, time1)
	wantErr(t, err, ErrReceipt)
	_, err = ws.Receipt(price.Usage{CompletionTokens: 129}, price.Default, time1)
	wantErr(t, err, ErrUsage)
}

func TestParseReceiptStrict(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	_, _, r := servedReceipt(t, w)
	b := r.Marshal()
	unsigned := *r
	unsigned.Signature = nil
	if r2, err := ParseReceipt(unsigned.Marshal()); err != nil || r2.Signature != nil {
		t.Fatalf("unsigned receipt: %v", err)
	}
	wantErr(t, unsigned.Verify(pubOf(w)), ErrSignature)
	short := *r
	short.Signature = r.Signature[:63]
	cases := map[string]struct {
		b    []byte
		want error
	}{
		"empty":         {nil, ErrMalformed},
		"trailing byte": {append(bytes.Clone(b), 0), ErrMalformed},
		"truncated":     {b[:len(b)-1], ErrMalformed},
		"magic":         {append([]byte("CCNE"), b[4:]...), ErrMalformed},
		"version":       {append(append([]byte(receiptMagic), 9), b[5:]...), ErrVersion},
		"short sig":     {short.Marshal(), ErrMalformed},
		"empty model":   {func() []byte { x := *r; x.Model = ""; return x.Marshal() }(), ErrMalformed},
		"long model":    {func() []byte { x := *r; x.Model = string(make([]byte, MaxModel+1)); return x.Marshal() }(), ErrTooLarge},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseReceipt(c.b)
			wantErr(t, err, c.want)
		})
	}
}
