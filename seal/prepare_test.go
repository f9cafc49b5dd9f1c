package seal

import (
	"crypto/ed25519"
	"errors"
	"testing"
)

func TestSealPrepared(t *testing.T) {
	_, client, _ := ed25519.GenerateKey(nil)
	k, err := GenerateKey(KEMMLKEM768X25519)
	if err != nil {
		t.Fatal(err)
	}
	r := Recipient{KeyID: [32]byte{7}, PublicKey: k.PublicKey()}
	p, err := Prepare(r)
	if err != nil {
		t.Fatal(err)
	}
	if p.KeyID() != r.KeyID {
		t.Errorf("KeyID = %x", p.KeyID())
	}
	h := testHeader()
	h.ClientKey = nil
	raw, _, err := SealPrepared(h, []byte("prepared body"), []*Prepared{p}, client)
	if err != nil {
		t.Fatal(err)
	}
	_, body, _, err := Open(raw, r.KeyID, k)
	if err != nil || string(body) != "prepared body" {
		t.Fatalf("open: %q, %v", body, err)
	}
	// A prepared encapsulation seals one request only: reusing it would reuse
	// an HPKE context's nonce.
	if _, _, err := SealPrepared(h, []byte("again"), []*Prepared{p}, client); !errors.Is(err, ErrRecipients) {
		t.Errorf("reuse: err = %v, want ErrRecipients", err)
	}
	// The header is bound even though the context was made without it.
	other, _ := Prepare(r)
	raw, _, _ = SealPrepared(h, []byte("x"), []*Prepared{other}, client)
	env, _ := ParseEnvelope(raw)
	h2 := env.Header
	h2.Model = "another-model"
	env.Header = h2
	if _, _, _, err := Open(resign(env, client), r.KeyID, k); !errors.Is(err, ErrDecrypt) {
		t.Errorf("changed header, re-signed: err = %v, want ErrDecrypt", err)
	}
}
