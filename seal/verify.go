package seal

import (
	"crypto/ed25519"
	"crypto/sha256"
	"sync"
)

// Signatures verified in this process are remembered, so that roles sharing
// a process (`cocoon up`, tests) check each envelope and receipt signature
// once rather than once per role: the proxy and the worker both check the
// client's signature on an envelope, and the proxy and the client both
// check a worker's receipt. Ed25519 verification is a pure function of the
// key, the message and the signature, and the memo is keyed by a SHA-256
// of all three, so a remembered result is the result a fresh check would
// give. Roles in separate processes share nothing and each still checks.
// A check already under way for the same inputs is waited for, not repeated.

// maxVerified bounds the memo; older results are forgotten first.
const maxVerified = 1024

type verifyCall struct {
	done chan struct{}
	ok   bool
}

var verified struct {
	sync.Mutex
	calls map[[32]byte]*verifyCall
	ring  [maxVerified][32]byte // keys in calls, oldest at next
	next  int
}

// verifyEd25519 is ed25519.Verify(pub, msg, sig), remembered for the
// process. pub must be ed25519.PublicKeySize bytes.
func verifyEd25519(pub ed25519.PublicKey, msg, sig []byte) bool {
	// Fixed sizes keep the memo's key unambiguous: with a signature of
	// another length, bytes could move between signature and message and
	// hit the memo of a message that was signed.
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	h := sha256.New()
	h.Write(pub)
	h.Write(sig)
	h.Write(msg)
	var key [32]byte
	h.Sum(key[:0])

	verified.Lock()
	if c := verified.calls[key]; c != nil {
		verified.Unlock()
		<-c.done
		return c.ok
	}
	if verified.calls == nil {
		verified.calls = make(map[[32]byte]*verifyCall, maxVerified)
	}
	c := &verifyCall{done: make(chan struct{})}
	old := verified.ring[verified.next]
	if verified.calls[old] != nil {
		delete(verified.calls, old)
	}
	verified.ring[verified.next] = key
	verified.next = (verified.next + 1) % maxVerified
	verified.calls[key] = c
	verified.Unlock()

	c.ok = ed25519.Verify(pub, msg, sig)
	close(c.done)
	if !c.ok { // only successes are worth keeping
		verified.Lock()
		if verified.calls[key] == c {
			delete(verified.calls, key)
		}
		verified.Unlock()
	}
	return c.ok
}
