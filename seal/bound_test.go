package seal

import (
	"testing"

	"github.com/cocoon-go/cocoon/price"
)

// signedReceipt has w make and sign a receipt for usage u without the
// session's checks, as a rogue worker (or one whose engine lies) would.
func signedReceipt(t *testing.T, ws *WorkerSession, w testWorker, u price.Usage) *Receipt {
	t.Helper()
	r := &Receipt{RequestID: ws.header.RequestID, HeaderHash: ws.headerHash, RequestHash: ws.requestHash,
		ResponseHash: ws.ResponseHash(), Worker: w.id, Model: ws.header.Model, Usage: u, Price: price.Default, Time: time1.Unix()}
	r.Cost, _ = r.Price.Cost(u)
	if err := r.Sign(w.sign); err != nil {
		t.Fatal(err)
	}
	return r
}

// An engine reporting 10^9 prompt tokens for "hi" once made the stock client
// pay 500 TON. The client refuses any receipt over what the request it sealed
// could produce, however well signed.
func TestInflatedPromptUsageRefusedByClient(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	h := testHeader()
	h.MaxTokens = 0 // the worker decides: DefaultMaxTokens bounds it
	bound := MaxUsage(&h, len(testPrompt))
	for name, u := range map[string]price.Usage{
		"prompt":     {PromptTokens: 1_000_000_000, CompletionTokens: 1},
		"just over":  {PromptTokens: bound.PromptTokens + 1},
		"completion": {PromptTokens: 10, CompletionTokens: DefaultMaxTokens + 1},
	} {
		t.Run(name, func(t *testing.T) {
			raw, cs := mustSeal(t, h, []byte(testPrompt), w)
			c, ws := answerChunks(t, raw, w, 1)
			if err := feed(cs, c...); err != nil {
				t.Fatal(err)
			}
			r := signedReceipt(t, ws, w, u)
			wantErr(t, cs.CheckReceipt(r, pubOf(w)), ErrUsage)
			env, _ := ParseEnvelope(raw)
			wantErr(t, env.Allows(r), ErrUsage) // the proxy's view agrees
			_, err := ws.Receipt(u, price.Default, time1)
			wantErr(t, err, ErrUsage) // and an honest worker makes none
		})
	}
	// At the bound itself the receipt passes everywhere.
	raw, cs := mustSeal(t, h, []byte(testPrompt), w)
	c, ws := answerChunks(t, raw, w, 1)
	if err := feed(cs, c...); err != nil {
		t.Fatal(err)
	}
	if env, _ := ParseEnvelope(raw); env.MaxUsage() != bound {
		t.Errorf("the proxy's bound %+v, the client's %+v", env.MaxUsage(), bound)
	}
	if err := cs.CheckReceipt(signedReceipt(t, ws, w, bound), pubOf(w)); err != nil {
		t.Errorf("receipt at the bound: %v", err)
	}
}

// Bound cuts an engine's counts to MaxUsage, and leaves honest ones alone.
func TestWorkerBoundsUsage(t *testing.T) {
	w := newTestWorker(t, KEMX25519, 1)
	raw, _ := mustSeal(t, testHeader(), []byte(testPrompt), w)
	_, _, ws := mustOpen(t, raw, w)
	honest := price.Usage{PromptTokens: 12, CachedTokens: 4, CompletionTokens: 128}
	if got, cut := ws.Bound(honest); cut || got != honest {
		t.Errorf("Bound(%+v) = %+v, %t", honest, got, cut)
	}
	got, cut := ws.Bound(price.Usage{PromptTokens: 1e9, CachedTokens: 1e9, CompletionTokens: 1e9})
	want := price.Usage{PromptTokens: len64(testPrompt) + PromptAllowance, CachedTokens: len64(testPrompt) + PromptAllowance, CompletionTokens: 128}
	if !cut || got != want {
		t.Errorf("Bound(inflated) = %+v, %t; want %+v", got, cut, want)
	}
}

func len64(s string) uint64 { return uint64(len(s)) }
