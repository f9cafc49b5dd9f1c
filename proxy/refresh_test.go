package proxy

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
)

// verifiedBundle is a verified bundle of the given keys, created at created
// and valid for ttl.
func verifiedBundle(hpke []byte, sign ed25519.PublicKey, created time.Time, ttl time.Duration) *attest.Verified {
	b := &attest.Bundle{HPKEKey: hpke, SigningKey: sign, Models: []attest.Model{{Name: "m"}},
		Created: created.Unix(), Expires: created.Add(ttl).Unix()}
	return &attest.Verified{Bundle: b, KeyID: b.Hash(), Expires: time.Unix(b.Expires, 0)}
}

// connected registers a worker admitted with v, as admit does.
func connected(p *Proxy, v *attest.Verified) *workerConn {
	w := &workerConn{name: "w", verified: v, models: map[string]bool{"m": true},
		hello: wire.Hello{Price: price.Default, Capacity: 1}, keys: map[[32]byte]time.Time{v.KeyID: bundleExpiry(v)}}
	p.workers[v.KeyID] = w
	return w
}

// hello is the re-read hello of w carrying v.
func hello(w *workerConn, v *attest.Verified) *workerConn {
	return &workerConn{name: w.name, verified: v, models: w.models, hello: w.hello}
}

// routes lists the workers a request for model "m" sealed to ids may go to.
func routes(p *Proxy, ids ...[32]byte) []*workerConn {
	env := &seal.Envelope{Header: seal.Header{Model: "m", PriceCap: price.Default}}
	for _, id := range ids {
		env.Keys = append(env.Keys, seal.WrappedKey{KeyID: id})
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	list, _ := p.candidates(env, time.Now())
	return list
}

// A new bundle of the same keys replaces the worker's in place; requests
// sealed to either key ID reach the same connection until the old bundle
// expires, and the directory counts the worker once.
func TestRefreshedBundleReplacedInPlace(t *testing.T) {
	p, _ := New(Config{}, tls.Certificate{}, nil, nil, slog.New(slog.DiscardHandler))
	hpke, sign := bytes.Repeat([]byte{7}, 32), ed25519.PublicKey(bytes.Repeat([]byte{9}, ed25519.PublicKeySize))
	now := time.Now()
	first := verifiedBundle(hpke, sign, now.Add(-time.Minute), time.Hour)
	w := connected(p, first)

	second := verifiedBundle(hpke, sign, now, time.Hour)
	if err := p.update(w, hello(w, second), p.log); err != nil {
		t.Fatalf("refreshed bundle of the same keys: %v", err)
	}
	if w.verified != second {
		t.Error("the worker's bundle was not replaced")
	}
	for _, id := range [][32]byte{first.KeyID, second.KeyID} {
		if got := routes(p, id); len(got) != 1 || got[0] != w {
			t.Errorf("requests sealed to %x reach %d workers, want the same connection", id[:4], len(got))
		}
	}
	if both := routes(p, first.KeyID, second.KeyID); len(both) != 1 {
		t.Errorf("an envelope sealed to both key IDs has %d candidates, want 1", len(both))
	}
	if got := p.Workers(); got != 1 {
		t.Errorf("Workers() = %d, want 1", got)
	}

	// An expired superseded bundle stops routing; so do those beyond
	// wire.MaxPreviousKeys, oldest first.
	p.mu.Lock()
	w.keys[first.KeyID] = now.Add(-time.Second)
	p.mu.Unlock()
	if err := p.update(w, hello(w, second), p.log); err != nil {
		t.Fatal(err)
	}
	if got := routes(p, first.KeyID); len(got) != 0 {
		t.Error("an expired superseded bundle still routes")
	}
	var past []*attest.Verified
	for i := range wire.MaxPreviousKeys + 2 {
		v := verifiedBundle(hpke, sign, now.Add(time.Duration(i+1)*time.Second), time.Hour)
		if err := p.update(w, hello(w, v), p.log); err != nil {
			t.Fatal(err)
		}
		past = append(past, v)
	}
	p.mu.Lock()
	routed := len(p.workers)
	p.mu.Unlock()
	if routed != 1+wire.MaxPreviousKeys {
		t.Errorf("%d key IDs route to the worker, want the current one and %d superseded", routed, wire.MaxPreviousKeys)
	}
	if got := routes(p, second.KeyID); len(got) != 0 {
		t.Error("the oldest superseded bundle beyond the limit still routes")
	}
	if got := routes(p, past[len(past)-2].KeyID); len(got) != 1 {
		t.Error("the newest superseded bundle does not route")
	}
}

// A bundle with other keys is another worker: the connection is dropped.
func TestChangedKeysDropTheWorker(t *testing.T) {
	hpke, sign := bytes.Repeat([]byte{7}, 32), ed25519.PublicKey(bytes.Repeat([]byte{9}, ed25519.PublicKeySize))
	now := time.Now()
	for name, v := range map[string]*attest.Verified{
		"HPKE key":    verifiedBundle(bytes.Repeat([]byte{8}, 32), sign, now, time.Hour),
		"signing key": verifiedBundle(hpke, ed25519.PublicKey(bytes.Repeat([]byte{1}, ed25519.PublicKeySize)), now, time.Hour),
	} {
		t.Run(name, func(t *testing.T) {
			p, _ := New(Config{}, tls.Certificate{}, nil, nil, slog.New(slog.DiscardHandler))
			first := verifiedBundle(hpke, sign, now.Add(-time.Minute), time.Hour)
			w := connected(p, first)
			if err := p.update(w, hello(w, v), p.log); !errors.Is(err, ErrKeysChanged) {
				t.Fatalf("update = %v, want ErrKeysChanged", err)
			}
			if w.verified != first || len(routes(p, v.KeyID)) != 0 {
				t.Error("a bundle with other keys was taken in")
			}
		})
	}
	t.Run("TLS key", func(t *testing.T) {
		p, _ := New(Config{}, tls.Certificate{}, nil, nil, slog.New(slog.DiscardHandler))
		w := connected(p, verifiedBundle(hpke, sign, now.Add(-time.Minute), time.Hour))
		v := verifiedBundle(hpke, sign, now, time.Hour)
		v.Bundle.TLSKeyHash[0] = 1
		v.KeyID = v.Bundle.Hash()
		if err := p.update(w, hello(w, v), p.log); !errors.Is(err, ErrKeysChanged) {
			t.Fatalf("update = %v, want ErrKeysChanged", err)
		}
	})
}
