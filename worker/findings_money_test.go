package worker

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/payments/paymentstest"
	"github.com/cocoon-go/cocoon/wire"
)

// Finding 5: a worker refuses a proxy channel with no close delay: the proxy
// could be served, close at once and take the deposit back.
func TestWorkerRefusesShortCloseDelay(t *testing.T) {
	ch := paymentstest.Open(t, 2*paymentstest.TON)
	w := newTestWorker(t, Config{}, WithPayments(&Payments{Wallet: ch.PayeeWallet, Chain: ch.Chain, Dir: t.TempDir(), WatchInterval: time.Millisecond,
		Journal: filepath.Join(t.TempDir(), "books.jsonl")}))
	defer stop(t, w)
	key := paymentstest.Key("quick proxy voucher")
	payer := ch.Wallet("quick proxy", 10*paymentstest.TON)
	cfg := contracts.ChannelConfig{Payer: payer.Address(), Payee: ch.PayeeWallet.Address(), PayerKey: key.Public().(ed25519.PublicKey),
		PayeeKey: ch.Config.PayeeKey, Nonce: 1, CloseDelay: 0}
	addr := ch.OpenOther(payer, cfg, 1*paymentstest.TON)
	id, _ := cfg.ID()
	body, _ := json.Marshal(struct {
		Channel string                  `json:"channel"`
		Voucher contracts.SignedVoucher `json:"voucher"`
	}{addr.String(), contracts.Voucher{ChannelID: id, Seqno: 1, Total: 1}.Sign(key)})
	rec := httptest.NewRecorder()
	w.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, wire.PathVouchers, bytes.NewReader(body)))
	if rec.Code/100 == 2 {
		t.Fatalf("a voucher on a channel with no close delay: HTTP %d, want a refusal", rec.Code)
	}
}
