package proxy

import (
	"encoding/hex"
	"net/http"
	"testing"

	"github.com/cocoon-go/cocoon/payments/paymentstest"
)

// Finding 2: a proxy paid by channels gives a client credit only against
// an open channel of its own that pays the proxy: min(the credit limit,
// the deposit its vouchers do not cover yet). A key with no channel, however
// fresh, gets none.
func TestCreditComesFromTheChannel(t *testing.T) {
	ch := paymentstest.Open(t, 3*paymentstest.TON)
	p := newFindingProxy(t, ch)
	client := hex.EncodeToString(ch.Config.PayerKey)
	if _, e := p.credit(client); e == nil || e.Status != http.StatusPaymentRequired || e.Code != "no_channel" {
		t.Fatalf("a client whose channel the proxy has not seen a voucher on: %v, want 402 no_channel", e)
	}
	stranger := hex.EncodeToString(pub(paymentstest.Key("a fresh key")))
	if _, e := p.credit(stranger); e == nil || e.Code != "no_channel" {
		t.Fatalf("a fresh key: %v, want 402 no_channel", e)
	}
	v, err := ch.Payer.Pay(120_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if code := postVoucher(t, p.Handler(), ch.Address().String(), v); code/100 != 2 {
		t.Fatalf("voucher: HTTP %d", code)
	}
	c, e := p.credit(client)
	if e != nil {
		t.Fatal(e)
	}
	if want := min(p.cfg.CreditLimit, 3*paymentstest.TON-120_000_000); c.Allowance != want || c.Paid != 120_000_000 {
		t.Errorf("credit %+v, want allowance %d and paid 120000000", c, want)
	}
	p.cfg.CreditLimit = 10 * paymentstest.TON // above the deposit: the deposit bounds it
	if c, _ := p.credit(client); c.Allowance != 3*paymentstest.TON-120_000_000 {
		t.Errorf("with a limit above the deposit: allowance %d, want the uncovered deposit %d", c.Allowance, 3*paymentstest.TON-120_000_000)
	}
}
