package seal

import (
	"crypto/ed25519"
	"sync"
	"testing"
)

// The memo of verified signatures answers as ed25519.Verify does: a
// signature that verified still does, and a bad one (another message, key or
// signature) is checked afresh and refused, also when asked at once from
// many goroutines.
func TestVerifyMemo(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	other, _, _ := ed25519.GenerateKey(nil)
	msg := []byte("cocoon/seal/v1/test\x00message")
	sig := ed25519.Sign(priv, msg)
	bad := append([]byte(nil), sig...)
	bad[0] ^= 1
	cases := []struct {
		pub  ed25519.PublicKey
		msg  []byte
		sig  []byte
		want bool
	}{
		{pub, msg, sig, true},
		{pub, msg, sig, true}, // remembered
		{pub, msg, bad, false},
		{pub, msg, bad, false}, // not remembered, refused again
		{other, msg, sig, false},
		{pub, []byte("cocoon/seal/v1/test\x00other"), sig, false},
		// Bytes moved between signature and message give the same
		// concatenation as the remembered check, and must still fail.
		{pub, append([]byte{sig[63]}, msg...), sig[:63], false},
		{pub, msg[1:], append(sig[:64:64], msg[0]), false},
	}
	for i, c := range cases {
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				if got := verifyEd25519(c.pub, c.msg, c.sig); got != c.want {
					t.Errorf("case %d: verify = %v, want %v", i, got, c.want)
				}
			})
		}
		wg.Wait()
	}
}

// The memo forgets the oldest results when full, and still answers right.
func TestVerifyMemoBounded(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	for i := range maxVerified + 10 {
		msg := []byte{byte(i), byte(i >> 8)}
		if !verifyEd25519(pub, msg, ed25519.Sign(priv, msg)) {
			t.Fatalf("message %d refused", i)
		}
	}
	verified.Lock()
	n := len(verified.calls)
	verified.Unlock()
	if n > maxVerified {
		t.Fatalf("memo holds %d results, limit %d", n, maxVerified)
	}
}
