package adversary

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/internal/testnet"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
)

// chat asks the network's client for an answer, as an app would.
func chat(t *testing.T, n *testnet.Net) (int, *api.Error) {
	t.Helper()
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}],"max_tokens":16}`
	resp, err := http.Post(n.BaseURL+"/chat/completions", "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, api.ParseError(resp.StatusCode, b)
}

// lying runs one honest answer, one with lie, then another honest one
// through a rogue worker, and checks that the client refused the lie
// (bad_receipt) and that neither the proxy nor the client booked it: the
// proxy pays a worker only what it booked.
func lying(t *testing.T, lie Lie) {
	var honest atomic.Bool
	honest.Store(true)
	n := testnet.Start(t, testnet.Options{})
	rogue := StartRogueWorker(t, n, &enginetest.FakeEngine{}, func(env *seal.Envelope, rc *seal.Receipt) {
		if !honest.Load() {
			lie(env, rc)
		}
	})
	worker := hex.EncodeToString(func() []byte { id := rogue.KeyID(); return id[:] }())
	if status, e := chat(t, n); status != http.StatusOK {
		t.Fatalf("an honest answer: %d %+v", status, e)
	}
	honest.Store(false)
	if status, e := chat(t, n); e == nil || e.Code != "bad_receipt" {
		t.Errorf("a lying receipt: HTTP %d, %+v; want the client to refuse it (bad_receipt)", status, e)
	}
	honest.Store(true)
	if status, e := chat(t, n); status != http.StatusOK {
		t.Fatalf("an honest answer after the lie: %d %+v", status, e)
	}
	booked := waitfor.Value(func() accounts.Account { return n.Ledger.Worker(worker) }, func(a accounts.Account) bool { return a.Requests >= 2 })
	if booked.Requests != 2 {
		t.Errorf("the proxy booked %d answers of the rogue worker, want the 2 honest ones", booked.Requests)
	}
	if c := n.Ledger.Client(n.ClientKey); c.Requests != 2 {
		t.Errorf("the proxy charged the client for %d answers, want 2", c.Requests)
	}
	if j := n.Journal.Worker(worker); j.Requests != 2 {
		t.Errorf("the client booked %d receipts of the rogue worker, want 2", j.Requests)
	}
}

// A rogue worker (attested, signing with its own key) claims a billion
// prompt tokens for "hi" and more completion tokens than the request
// allows: the proxy does not book (or pay) it, and the client refuses it.
func TestRogueWorkerInflatedReceiptIsNotBookedOrPaid(t *testing.T) {
	lying(t, func(env *seal.Envelope, rc *seal.Receipt) {
		rc.Usage = price.Usage{PromptTokens: 1_000_000_000, CompletionTokens: env.MaxUsage().CompletionTokens + 1}
		rc.Cost, _ = rc.Price.Cost(rc.Usage)
	})
}

// A rogue worker's receipt names another request, or hashes another answer
// than the one relayed: refused by the client, not booked by the proxy.
func TestRogueWorkerReceiptForAnotherRequestRefused(t *testing.T) {
	t.Run("request id", func(t *testing.T) {
		lying(t, func(_ *seal.Envelope, rc *seal.Receipt) {
			rand.Read(rc.RequestID[:])
			rand.Read(rc.HeaderHash[:])
		})
	})
	t.Run("response hash", func(t *testing.T) {
		lying(t, func(_ *seal.Envelope, rc *seal.Receipt) { rc.ResponseHash[0] ^= 1 })
	})
}
