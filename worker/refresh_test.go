package worker

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
)

// run sends w a request sealed to keyID and returns the first record's type
// and the receipt's worker key ID, if any.
func run(t *testing.T, w *Worker, keyID [32]byte) (first seal.RecordType, receiptFor [32]byte) {
	t.Helper()
	_, priv, _ := ed25519.GenerateKey(nil)
	h := seal.Header{Endpoint: api.EndpointChat, Model: enginetest.DefaultModel, PriceCap: price.Default,
		Expires: time.Now().Add(time.Minute).Unix(), ClientKey: priv.Public().(ed25519.PublicKey), Proxy: [32]byte{1}}
	h.RequestID[0] = keyID[0]
	raw, _, err := seal.Seal(h, []byte(`{"model":"`+enginetest.DefaultModel+`","messages":[{"role":"user","content":"hi"}]}`),
		[]seal.Recipient{{KeyID: keyID, PublicKey: w.id.HPKE.PublicKey()}}, priv)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	w.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, wire.PathRun, bytes.NewReader(raw)))
	rr := seal.NewRecordReader(rec.Body)
	for i := 0; ; i++ {
		typ, payload, err := rr.Next()
		if err != nil {
			return first, receiptFor
		}
		if i == 0 {
			first = typ
		}
		if typ == seal.RecordReceipt {
			rc, err := seal.ParseReceipt(payload)
			if err != nil {
				t.Fatal(err)
			}
			receiptFor = rc.Worker
		}
	}
}

// TestRefreshKeepsAcceptingThePreviousKeyID: a new bundle of the same keys
// does not strand the clients that still hold the previous one, until it
// expires.
func TestRefreshKeepsAcceptingThePreviousKeyID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newTestWorker(t, Config{})
		old := w.KeyID()
		time.Sleep(time.Second) // bundle times are in seconds; the bubble's clock starts on a whole second
		if err := w.refreshEvidence(); err != nil {
			t.Fatal(err)
		}
		current := w.KeyID()
		if current == old {
			t.Fatal("refresh a second later kept the key ID")
		}
		for name, id := range map[string][32]byte{"current": current, "previous": old} {
			if typ, rc := run(t, w, id); typ != seal.RecordChunk || rc != id {
				t.Errorf("request sealed to the %s key ID: first record %d, receipt for %x; want an answer with a receipt naming it", name, typ, rc[:4])
			}
		}
		if typ, _ := run(t, w, [32]byte{1}); typ != seal.RecordError {
			t.Errorf("request sealed to an unknown key ID: first record %d, want an error", typ)
		}
		w.mu.Lock()
		w.previous[0].expires = time.Now()
		w.mu.Unlock()
		if typ, _ := run(t, w, old); typ != seal.RecordError {
			t.Errorf("request sealed to an expired previous bundle: first record %d, want an error", typ)
		}
	})
}

// TestPreviousKeyIDsBounded: a worker remembers at most
// wire.MaxPreviousKeys superseded bundles, newest first.
func TestPreviousKeyIDsBounded(t *testing.T) {
	w := newTestWorker(t, Config{})
	var ids [][32]byte
	for i := range wire.MaxPreviousKeys + 2 {
		w.mu.Lock()
		w.keyID = [32]byte{byte(i + 1)} // as if each refresh made a new bundle
		w.mu.Unlock()
		ids = append(ids, [32]byte{byte(i + 1)})
		if err := w.refreshEvidence(); err != nil {
			t.Fatal(err)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.previous) != wire.MaxPreviousKeys || w.previous[0].id != ids[len(ids)-1] {
		t.Errorf("previous = %d key IDs, newest %x; want %d, newest %x", len(w.previous), w.previous[0].id[:1], wire.MaxPreviousKeys, ids[len(ids)-1][:1])
	}
}
