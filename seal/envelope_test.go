package seal

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cocoon-go/cocoon/price"
)

var kems = []uint16{KEMMLKEM768X25519, KEMX25519}

func TestRoundTrip(t *testing.T) {
	for _, kem := range kems {
		for k := 1; k <= 3; k++ {
			t.Run(fmt.Sprintf("%#04x/k=%d", kem, k), func(t *testing.T) {
				var ws []testWorker
				for i := range k {
					ws = append(ws, newTestWorker(t, kem, byte(i+1)))
				}
				raw, cs := mustSeal(t, testHeader(), []byte(testPrompt), ws...)
				for _, w := range ws { // every recipient can open
					env, body, ws := mustOpen(t, raw, w)
					if string(body) != testPrompt {
						t.Fatalf("body = %q", body)
					}
					if h := testHeader(); !reflect.DeepEqual(env.Header, h) {
						t.Fatalf("header = %+v, want %+v", env.Header, h)
					}
					if ws.RequestHash() != cs.RequestHash() {
						t.Fatal("request hashes differ")
					}
				}
				// The last one answers.
				_, _, w := mustOpen(t, raw, ws[k-1])
				answer := []string{"Hel", "lo, ", "world", ""}
				var got strings.Builder
				for i, a := range answer {
					c, err := w.SealChunk([]byte(a), i == len(answer)-1)
					if err != nil {
						t.Fatal(err)
					}
					p, final, err := cs.OpenChunk(c)
					if err != nil {
						t.Fatal(err)
					}
					if final != (i == len(answer)-1) {
						t.Fatalf("chunk %d final = %v", i, final)
					}
					got.Write(p)
				}
				if got.String() != "Hello, world" || !cs.Finished() || !w.Finished() {
					t.Fatalf("answer %q, finished %v %v", got.String(), cs.Finished(), w.Finished())
				}
				if h := testHeader(); cs.ResponseHash() != w.ResponseHash() || cs.HeaderHash() != h.Hash() {
					t.Fatal("hashes differ")
				}
				r, err := w.Receipt(price.Usage{PromptTokens: 20, CompletionTokens: 3}, price.Default, time1)
				if err != nil {
					t.Fatal(err)
				}
				if err := r.Sign(ws[k-1].sign); err != nil {
					t.Fatal(err)
				}
				if err := cs.CheckReceipt(r, ws[k-1].sign.Public().(ed25519.PublicKey)); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestMixedKEMs(t *testing.T) {
	a, b := newTestWorker(t, KEMMLKEM768X25519, 1), newTestWorker(t, KEMX25519, 2)
	raw, _ := mustSeal(t, testHeader(), []byte(testPrompt), a, b)
	for _, w := range []testWorker{a, b} {
		if _, body, _ := mustOpen(t, raw, w); string(body) != testPrompt {
			t.Fatalf("body = %q", body)
		}
	}
}

func TestNonRecipient(t *testing.T) {
	for _, kem := range kems {
		in, out := newTestWorker(t, kem, 1), newTestWorker(t, kem, 2)
		raw, _ := mustSeal(t, testHeader(), []byte(testPrompt), in)
		_, _, _, err := Open(raw, out.id, out.key)
		wantErr(t, err, ErrNotRecipient)
		// A worker that claims the recipient's key ID does not hold its key.
		_, _, _, err = Open(raw, in.id, out.key)
		wantErr(t, err, ErrDecrypt)
	}
}

// The proxy sees the envelope, every public key and the header, and holds
// no private key: whatever key it brings, nothing opens.
func TestProxyCannotOpen(t *testing.T) {
	ws := []testWorker{newTestWorker(t, KEMMLKEM768X25519, 1), newTestWorker(t, KEMX25519, 2)}
	raw, _ := mustSeal(t, testHeader(), []byte(testPrompt), ws...)
	env, err := ParseEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	if env.Header.Model != testHeader().Model || env.Header.MaxTokens != 128 {
		t.Fatalf("proxy reads header %+v", env.Header)
	}
	for _, kem := range kems {
		own, err := GenerateKey(kem)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range ws {
			_, _, _, err := Open(raw, w.id, own)
			wantErr(t, err, ErrDecrypt)
		}
	}
}

// Flipping any bit of the envelope makes Open fail; the signature, checked
// first, catches what parsing does not.
func TestFlipEveryBit(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	raw, _ := mustSeal(t, testHeader(), []byte("short prompt"), w)
	for i := range raw {
		for bit := range 8 {
			bad := bytes.Clone(raw)
			bad[i] ^= 1 << bit
			_, _, _, err := Open(bad, w.id, w.key)
			if err == nil {
				t.Fatalf("byte %d bit %d: Open succeeded", i, bit)
			}
			if !errors.Is(err, ErrSignature) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("byte %d bit %d: %v", i, bit, err)
			}
		}
	}
}

// Under the signature, each part is bound by the cryptography itself: even
// someone who could sign as the client cannot change a part unnoticed.
func TestTamperUnderSignature(t *testing.T) {
	w := newTestWorker(t, KEMMLKEM768X25519, 1)
	raw, _ := mustSeal(t, testHeader(), []byte(testPrompt), w)
	parts := map[string]func(e *Envelope){
		"enc":        func(e *Envelope) { e.Keys[0].Enc[7] ^= 1 },
		"sealed key": func(e *Envelope) { e.Keys[0].Sealed[3] ^= 1 },
		"body":       func(e *Envelope) { e.Body[0] ^= 1 },
		"body tag":   func(e *Envelope) { e.Body[len(e.Body)-1] ^= 1 },
		"request id": func(e *Envelope) { e.Header.RequestID[0] ^= 1 },
		"endpoint":   func(e *Envelope) { e.Header.Endpoint = EndpointCompletions },
		"model":      func(e *Envelope) { e.Header.Model = "Qwen/Qwen3-32B" },
		"max tokens": func(e *Envelope) { e.Header.MaxTokens = 100000 },
		"stream":     func(e *Envelope) { e.Header.Stream = false },
		"price cap":  func(e *Envelope) { e.Header.PriceCap.PerToken *= 10 },
		"expires":    func(e *Envelope) { e.Header.Expires += 3600 },
	}
	for name, change := range parts {
		t.Run(name, func(t *testing.T) {
			e, err := ParseEnvelope(bytes.Clone(raw))
			if err != nil {
				t.Fatal(err)
			}
			change(e)
			bad := resign(e, testClient)
			_, _, _, err = Open(bad, w.id, w.key)
			wantErr(t, err, ErrDecrypt)
		})
	}
}

// The proxy changes a header field and signs the envelope itself. If it
// keeps the client's key in the header, the signature check fails; if it
// puts its own key there, the signature checks but the worker cannot unwrap
// the content key, because the header hash is in the HPKE info.
func TestHeaderChangedAndResigned(t *testing.T) {
	w := newTestWorker(t, KEMMLKEM768X25519, 1)
	raw, _ := mustSeal(t, testHeader(), []byte(testPrompt), w)

	e, _ := ParseEnvelope(bytes.Clone(raw))
	e.Header.Model = "cheaper-model"
	bad := resign(e, testProxy)
	_, _, _, err := Open(bad, w.id, w.key)
	wantErr(t, err, ErrSignature)

	e, _ = ParseEnvelope(bytes.Clone(raw))
	e.Header.Model = "cheaper-model"
	e.Header.ClientKey = testProxy.Public().(ed25519.PublicKey)
	bad = resign(e, testProxy)
	e2, err := ParseEnvelope(bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := e2.VerifySignature(); err != nil {
		t.Fatalf("re-signed envelope: %v, want a valid signature", err)
	}
	_, _, _, err = Open(bad, w.id, w.key)
	wantErr(t, err, ErrDecrypt)
	if !strings.Contains(err.Error(), "unwrap") {
		t.Fatalf("err = %v, want the unwrap to fail", err)
	}
}

// A wrapped key is bound to its key ID: relabelled, it does not unwrap,
// even for a worker whose one HPKE key appears in two bundles, and swapping
// the key IDs of two wrapped keys breaks both.
func TestRelabelledKeyID(t *testing.T) {
	a, b := newTestWorker(t, KEMX25519, 1), newTestWorker(t, KEMX25519, 2)
	renewed := a
	renewed.id[0] ^= 1 // a's next bundle, with the same HPKE key
	raw, _ := mustSeal(t, testHeader(), []byte(testPrompt), a, b)

	e, _ := ParseEnvelope(bytes.Clone(raw))
	e.Keys[0].KeyID = renewed.id
	_, _, _, err := Open(resign(e, testClient), renewed.id, renewed.key)
	wantErr(t, err, ErrDecrypt)

	e, _ = ParseEnvelope(bytes.Clone(raw))
	e.Keys[0].KeyID, e.Keys[1].KeyID = e.Keys[1].KeyID, e.Keys[0].KeyID
	bad := resign(e, testClient)
	for _, w := range []testWorker{a, b} {
		_, _, _, err := Open(bad, w.id, w.key)
		wantErr(t, err, ErrDecrypt)
	}
}

// Neither the envelope nor the response stream the proxy relays contains
// the prompt or the answer, nor any 8-byte piece of what the user wrote or
// the model answered. (The model name is in the prompt too, and in the
// clear header by design.)
func TestCiphertextHidesPlaintext(t *testing.T) {
	const answer = "The secret word you gave me is marmalade-7731, and here it is again: marmalade-7731."
	for _, kem := range kems {
		w := newTestWorker(t, kem, 1)
		raw, cs := mustSeal(t, testHeader(), []byte(testPrompt), w)
		_, _, ws := mustOpen(t, raw, w)
		var stream bytes.Buffer
		for i := 0; i < len(answer); i += 10 {
			c, err := ws.SealChunk([]byte(answer[i:min(i+10, len(answer))]), i+10 >= len(answer))
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteRecord(&stream, RecordChunk, c); err != nil {
				t.Fatal(err)
			}
		}
		// The check can fail: the answer is there once opened.
		var opened []byte
		rr := NewRecordReader(bytes.NewReader(stream.Bytes()))
		for !cs.Finished() {
			_, c, err := rr.Next()
			if err != nil {
				t.Fatal(err)
			}
			p, _, err := cs.OpenChunk(c)
			if err != nil {
				t.Fatal(err)
			}
			opened = append(opened, p...)
		}
		if string(opened) != answer {
			t.Fatalf("opened %q", opened)
		}
		for _, seen := range [][]byte{raw, stream.Bytes()} {
			if bytes.Contains(seen, []byte(testPrompt)) {
				t.Fatalf("%#04x: sealed bytes contain the prompt", kem)
			}
		}
		for name, secret := range map[string]string{"prompt": testSecret, "answer": answer} {
			if !strings.Contains(testPrompt+answer, secret) {
				t.Fatalf("%s is not in the plaintext", name)
			}
			for _, seen := range [][]byte{raw, stream.Bytes()} {
				for i := 0; i+8 <= len(secret); i++ {
					if bytes.Contains(seen, []byte(secret[i:i+8])) {
						t.Fatalf("%#04x: sealed bytes contain %s piece %q", kem, name, secret[i:i+8])
					}
				}
			}
		}
	}
}

func TestSealRefuses(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	nine := make([]Recipient, 9)
	for i := range nine {
		nine[i] = newTestWorker(t, KEMX25519, byte(i+1)).recipient()
	}
	badKey := w.recipient()
	badKey.PublicKey = badKey.PublicKey[:20]
	cases := []struct {
		name   string
		h      func(*Header)
		to     []Recipient
		body   int
		client ed25519.PrivateKey
		want   error
	}{
		{"no recipients", nil, []Recipient{}, 1, testClient, ErrRecipients},
		{"nine recipients", nil, nine, 1, testClient, ErrRecipients},
		{"duplicate key id", nil, []Recipient{w.recipient(), w.recipient()}, 1, testClient, ErrRecipients},
		{"bad public key", nil, []Recipient{badKey}, 1, testClient, ErrRecipients},
		{"zero request id", func(h *Header) { h.RequestID = [16]byte{} }, nil, 1, testClient, ErrMalformed},
		{"unknown endpoint", func(h *Header) { h.Endpoint = "embeddings" }, nil, 1, testClient, ErrMalformed},
		{"empty model", func(h *Header) { h.Model = "" }, nil, 1, testClient, ErrMalformed},
		{"long model", func(h *Header) { h.Model = strings.Repeat("m", MaxModel+1) }, nil, 1, testClient, ErrMalformed},
		{"bad utf-8 model", func(h *Header) { h.Model = "\xff" }, nil, 1, testClient, ErrMalformed},
		{"no expiry", func(h *Header) { h.Expires = 0 }, nil, 1, testClient, ErrMalformed},
		{"client key not the signer", func(h *Header) { h.ClientKey = testProxy.Public().(ed25519.PublicKey) }, nil, 1, testClient, ErrMalformed},
		{"short client key", nil, nil, 1, testClient[:10], ErrMalformed},
		{"body too large", nil, nil, MaxEnvelope, testClient, ErrTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := testHeader()
			if c.h != nil {
				c.h(&h)
			}
			to := c.to
			if to == nil {
				to = []Recipient{w.recipient()}
			}
			_, _, err := Seal(h, make([]byte, c.body), to, c.client)
			wantErr(t, err, c.want)
		})
	}
	// Without a client key in the header, Seal fills it in.
	h := testHeader()
	h.ClientKey = nil
	raw, _, err := Seal(h, nil, []Recipient{w.recipient()}, testClient)
	if err != nil {
		t.Fatal(err)
	}
	env, _, _ := mustOpen(t, raw, w)
	if !bytes.Equal(env.Header.ClientKey, testHeader().ClientKey) {
		t.Fatal("client key not filled in")
	}
}

func TestParseEnvelopeStrict(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	raw, _ := mustSeal(t, testHeader(), []byte(testPrompt), w)
	cases := map[string]struct {
		raw  []byte
		want error
	}{
		"empty":         {nil, ErrMalformed},
		"trailing byte": {append(bytes.Clone(raw), 0), ErrMalformed},
		"truncated":     {raw[:len(raw)-1], ErrMalformed},
		"magic":         {append([]byte("XXXX"), raw[4:]...), ErrMalformed},
		"version":       {append(append([]byte(envelopeMagic), envelopeVersion+1), raw[5:]...), ErrVersion},
		"over limit":    {make([]byte, MaxEnvelope+1), ErrTooLarge},
	}
	e, _ := ParseEnvelope(bytes.Clone(raw))
	e.Keys = append(e.Keys, e.Keys[0])
	cases["duplicate key id"] = struct {
		raw  []byte
		want error
	}{resign(e, testClient), ErrMalformed}
	e, _ = ParseEnvelope(bytes.Clone(raw))
	e.Keys = nil
	cases["no keys"] = struct {
		raw  []byte
		want error
	}{resign(e, testClient), ErrMalformed}
	e, _ = ParseEnvelope(bytes.Clone(raw))
	e.Header.Stream = true
	bad := resign(e, testClient)
	i := bytes.Index(bad, []byte(e.Header.Model)) + len(e.Header.Model) + 4 // the stream flag
	bad[i] = 2
	cases["stream flag 2"] = struct {
		raw  []byte
		want error
	}{bad, ErrMalformed}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ParseEnvelope(c.raw)
			wantErr(t, err, c.want)
		})
	}
}

// An envelope built by hand is validated before its signature is checked.
func TestVerifySignatureValidates(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	raw, _ := mustSeal(t, testHeader(), []byte(testPrompt), w)
	e, _ := ParseEnvelope(raw)
	if err := e.VerifySignature(); err != nil {
		t.Fatal(err)
	}
	e.Header.ClientKey = e.Header.ClientKey[:31]
	wantErr(t, e.VerifySignature(), ErrMalformed)
}

func TestHeaderHash(t *testing.T) {
	base := testHeader()
	seen := map[[32]byte]string{base.Hash(): "base"}
	changes := map[string]func(*Header){
		"request id": func(h *Header) { h.RequestID[15]++ },
		"endpoint":   func(h *Header) { h.Endpoint = EndpointCompletions },
		"model":      func(h *Header) { h.Model += "x" },
		"max tokens": func(h *Header) { h.MaxTokens++ },
		"stream":     func(h *Header) { h.Stream = !h.Stream },
		"per token":  func(h *Header) { h.PriceCap.PerToken++ },
		"prompt mul": func(h *Header) { h.PriceCap.PromptMul++ },
		"cached mul": func(h *Header) { h.PriceCap.CachedMul++ },
		"compl mul":  func(h *Header) { h.PriceCap.CompletionMul++ },
		"expires":    func(h *Header) { h.Expires++ },
		"client key": func(h *Header) { h.ClientKey = testProxy.Public().(ed25519.PublicKey) },
		// Moving a byte from one string to the next must change the hash.
		"boundary": func(h *Header) { h.Endpoint, h.Model = "chat/completion", "s"+h.Model },
	}
	for name, change := range changes {
		h := testHeader()
		change(&h)
		sum := h.Hash()
		if prev, ok := seen[sum]; ok {
			t.Fatalf("%s: same hash as %s", name, prev)
		}
		seen[sum] = name
	}
}

func TestKeys(t *testing.T) {
	for _, kem := range kems {
		k, err := GenerateKey(kem)
		if err != nil {
			t.Fatal(err)
		}
		if k.KEM() != kem {
			t.Fatalf("KEM = %#04x", k.KEM())
		}
		k2, err := ParsePrivateKey(k.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(k.PublicKey(), k2.PublicKey()) || !bytes.Equal(k.Bytes(), k2.Bytes()) {
			t.Fatal("parsed key differs")
		}
		if err := CheckPublicKey(k.PublicKey()); err != nil {
			t.Fatal(err)
		}
		pub := k.PublicKey()
		wantErr(t, CheckPublicKey(pub[:len(pub)-1]), ErrMalformed)
		wantErr(t, CheckPublicKey(append(pub, 0)), ErrMalformed)
		priv := k.Bytes()
		_, err = ParsePrivateKey(priv[:len(priv)-1])
		wantErr(t, err, ErrMalformed)
	}
	_, err := GenerateKey(0x0010) // DHKEM(P-256): real, but not ours
	wantErr(t, err, ErrUnsupportedKEM)
	wantErr(t, CheckPublicKey([]byte{0x00, 0x10, 1, 2, 3}), ErrUnsupportedKEM)
	wantErr(t, CheckPublicKey([]byte{0x64}), ErrMalformed)
	_, err = ParsePrivateKey(nil)
	wantErr(t, err, ErrMalformed)
}
