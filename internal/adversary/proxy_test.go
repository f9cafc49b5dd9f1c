package adversary

import (
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/internal/testnet"
	"github.com/cocoon-go/cocoon/payments/paymentstest"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
	"github.com/cocoon-go/cocoon/worker"
)

// Finding 5: a proxy that takes whole answers from a worker (with their
// receipts) and never posts a voucher used to be served for ever. The
// worker books each receipt and refuses the proxy, with a code it may retry
// on another worker, once its unpaid receipts with what the next request
// may cost would pass the worker's credit.
func TestWorkerRefusesAProxyThatDoesNotPay(t *testing.T) {
	n := testnet.Start(t, testnet.Options{})
	m := testnet.StartMaliciousProxy(t)
	ch := paymentstest.Open(t, 2*paymentstest.TON)
	c := NewClient("")
	c.Proxy = m.Key
	const maxTokens = 16
	body := []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"hi"}],"max_tokens":` + strconv.Itoa(maxTokens) + `}`)
	header := func() seal.Header {
		h := c.Header(model)
		h.MaxTokens = maxTokens
		return h
	}
	h := header()
	hold := price.Default.MaxCost(seal.MaxUsage(&h, len(body)))
	const unpaidAnswers = 5 // about as many answers as the credit leaves room for beyond one request in flight
	eng := &enginetest.FakeEngine{}
	w, id := n.StartWorker(t, "worker-unpaid", eng, m.Addr, m.Pin, worker.WithPayments(&worker.Payments{Wallet: ch.PayeeWallet,
		Dir: t.TempDir(), Journal: filepath.Join(t.TempDir(), "books.jsonl"), ProxyCredit: hold + unpaidAnswers*10_000}))
	to := &attest.Verified{KeyID: w.KeyID(), Bundle: &attest.Bundle{HPKEKey: id.HPKE.PublicKey()}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	served, refused := 0, 0
	for range 50 {
		raw, _, err := c.Seal(header(), body, to)
		if err != nil {
			t.Fatal(err)
		}
		typ, payload, err := m.Take(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		if typ == seal.RecordReceipt {
			if refused > 0 {
				t.Fatal("an unpaid proxy was served again after a refusal")
			}
			served++
			continue
		}
		erec, err := wire.ParseErrorRecord(payload)
		if err != nil || erec.Status != http.StatusPaymentRequired || erec.Code != "proxy_unpaid" || !erec.Retry {
			t.Fatalf("after %d answers: %v record %s; want a receipt or 402 proxy_unpaid with retry", served, typ, payload)
		}
		if refused++; refused == 3 {
			break
		}
	}
	if refused == 0 || served == 0 || served > 2*unpaidAnswers {
		t.Errorf("a proxy that never pays: %d answers served, then %d refused; want a few served (the credit), then refusals", served, refused)
	}
	if eng.Runs() != served {
		t.Errorf("the engine ran %d times for %d answers: refused requests must not run", eng.Runs(), served)
	}
}
