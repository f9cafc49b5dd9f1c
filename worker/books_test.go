package worker

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/payments/paymentstest"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
)

// request seals a chat request for at most maxTokens to w.
func request(t *testing.T, w *Worker, maxTokens uint32) (raw []byte, h seal.Header, body []byte) {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	h = seal.Header{Endpoint: api.EndpointChat, Model: enginetest.DefaultModel, PriceCap: price.Default, MaxTokens: maxTokens,
		Expires: time.Now().Add(time.Minute).Unix(), ClientKey: key.Public().(ed25519.PublicKey), Proxy: [32]byte{1}}
	rand.Read(h.RequestID[:])
	body = []byte(`{"model":"` + enginetest.DefaultModel + `","messages":[{"role":"user","content":"hi"}],"max_tokens":` + strconv.Itoa(int(maxTokens)) + `}`)
	raw, _, err := seal.Seal(h, body, []seal.Recipient{{KeyID: w.KeyID(), PublicKey: w.id.HPKE.PublicKey()}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return raw, h, body
}

// serve has w serve raw and returns its receipt, or its error record.
func serve(t *testing.T, w *Worker, raw []byte) (*seal.Receipt, *wire.ErrorRecord) {
	t.Helper()
	rec := httptest.NewRecorder()
	w.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, wire.PathRun, bytes.NewReader(raw)))
	rr := seal.NewRecordReader(rec.Body)
	for {
		typ, payload, err := rr.Next()
		if err != nil {
			t.Fatalf("the answer ended without a receipt or an error: %v", err)
		}
		switch typ {
		case seal.RecordReceipt:
			rc, err := seal.ParseReceipt(payload)
			if err != nil {
				t.Fatal(err)
			}
			return rc, nil
		case seal.RecordError:
			erec, err := wire.ParseErrorRecord(payload)
			if err != nil {
				t.Fatal(err)
			}
			return nil, erec
		}
	}
}

// postVoucher posts v on ch's channel to w, as the proxy's Stream does.
func postVoucher(t *testing.T, w *Worker, ch *paymentstest.Channel, v contracts.SignedVoucher) {
	t.Helper()
	body, _ := json.Marshal(payments.VoucherPost{Channel: ch.Address().String(), Voucher: v})
	rec := httptest.NewRecorder()
	w.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, wire.PathVouchers, bytes.NewReader(body)))
	if rec.Code/100 != 2 {
		t.Fatalf("voucher: HTTP %d %s", rec.Code, rec.Body)
	}
}

func isUnpaid(e *wire.ErrorRecord) bool {
	return e != nil && e.Status == http.StatusPaymentRequired && e.Code == "proxy_unpaid" && e.Retry
}

// Finding 5: the worker books what each receipt it signs is worth (the
// proxy's rule: here the cost less a 10% fee) and holds each request's
// worst case while it runs. A proxy whose unpaid receipts would pass the
// worker's credit is refused, with a code it may retry on another worker,
// until its vouchers cover them; the books outlive the worker.
func TestWorkerBooksReceiptsAgainstVouchers(t *testing.T) {
	ch := paymentstest.Open(t, 2*paymentstest.TON)
	journal := filepath.Join(t.TempDir(), "books.jsonl")
	_, h, body := request(t, newTestWorker(t, Config{}), 16)
	hold := price.Default.MaxCost(seal.MaxUsage(&h, len(body)))
	// Room for one request in flight, not for one more after an unpaid one.
	w := newTestWorker(t, Config{}, WithPayments(&Payments{Wallet: ch.PayeeWallet, Channel: ch.Payee, Journal: journal,
		ProxyCredit: hold + 1, WatchInterval: time.Millisecond}))

	raw, _, _ := request(t, w, 16)
	rc, erec := serve(t, w, raw)
	if rc == nil {
		t.Fatalf("first request refused: %+v", erec)
	}
	pay := price.Split{FeeBPS: DefaultMaxProxyFeeBPS}.WorkerPay(rc.Price, rc.Usage, rc.Cost.Total)
	if owed, paid := w.money.books.owed(""); owed != pay || paid != 0 || pay == 0 {
		t.Fatalf("books after one receipt: owed %d, paid %d; want owed %d (cost %d less 10%%), paid 0", owed, paid, pay, rc.Cost.Total)
	}
	if held := w.money.books.journal.Held(""); held != 0 {
		t.Errorf("%d still held after the receipt was booked", held)
	}

	raw, _, _ = request(t, w, 16)
	if rc, erec := serve(t, w, raw); !isUnpaid(erec) {
		t.Fatalf("a request past the credit, unpaid: served %t, error %+v; want 402 proxy_unpaid, retry", rc != nil, erec)
	}

	// The proxy pays what it owes: the same request is served.
	postVoucher(t, w, ch, ch.Pay(pay))
	if owed, paid := w.money.books.owed(""); owed != pay || paid != pay {
		t.Fatalf("books after the voucher: owed %d, paid %d; want %d each", owed, paid, pay)
	}
	raw, _, _ = request(t, w, 16)
	if rc, erec := serve(t, w, raw); rc == nil {
		t.Fatalf("a paid-up proxy refused: %+v", erec)
	}
	owed, _ := w.money.books.owed("")
	stop(t, w)

	j, err := accounts.OpenFile(journal)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if a := j.Client(""); a.Amount != owed || a.Requests != 2 {
		t.Errorf("the books after a restart: %+v, want 2 receipts worth %d", a, owed)
	}
}

// Finding 5: once a proxy pays through a channel, it is served no more than
// the channel's unspent deposit could still pay, whatever the credit.
func TestWorkerRefusesBeyondTheProxysDeposit(t *testing.T) {
	ch := paymentstest.Open(t, 1*paymentstest.TON)
	w := newTestWorker(t, Config{}, WithPayments(&Payments{Wallet: ch.PayeeWallet, Channel: ch.Payee,
		Journal: filepath.Join(t.TempDir(), "books.jsonl"), ProxyCredit: 10 * paymentstest.TON, WatchInterval: time.Millisecond}))
	defer stop(t, w)
	// max_tokens 2^20 may cost 1.05 TON: within the credit, not the deposit.
	big, _, _ := request(t, w, seal.MaxTokenLimit)
	postVoucher(t, w, ch, ch.Pay(0))
	if rc, erec := serve(t, w, big); !isUnpaid(erec) {
		t.Fatalf("a request that may cost more than the channel holds: served %t, error %+v; want 402 proxy_unpaid", rc != nil, erec)
	}
	small, _, _ := request(t, w, 16)
	if rc, erec := serve(t, w, small); rc == nil {
		t.Fatalf("a request within the deposit refused: %+v", erec)
	}
}
