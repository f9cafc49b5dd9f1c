package proxy

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/contracts"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/payments/paymentstest"
	"github.com/cocoon-go/cocoon/wire"
)

// newFindingProxy is a proxy paid through ch's payee wallet that learns of
// client channels from their vouchers.
func newFindingProxy(t *testing.T, ch *paymentstest.Channel) *Proxy {
	t.Helper()
	p, err := New(Config{}, tls.Certificate{}, nil, nil, slog.New(slog.DiscardHandler), WithPayments(&Payments{Chain: ch.Chain,
		Wallet: ch.PayeeWallet, Dir: t.TempDir(), WatchInterval: time.Millisecond, VoucherKey: paymentstest.Key("proxy voucher")}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// postVoucher posts v on the channel at addr to h and returns the status.
func postVoucher(t *testing.T, h http.Handler, addr string, v contracts.SignedVoucher) int {
	t.Helper()
	body, err := json.Marshal(struct {
		Channel string                  `json:"channel"`
		Voucher contracts.SignedVoucher `json:"voucher"`
	}{addr, v})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, wire.PathVouchers, bytes.NewReader(body)))
	return rec.Code
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// Finding 5: a channel whose payer could close it at once (close delay 0)
// is refused, and so is one whose close has started: the payer would be
// served and then take its deposit back before the proxy could claim.
func TestProxyRefusesShortCloseDelay(t *testing.T) {
	ch := paymentstest.Open(t, 3*paymentstest.TON)
	p := newFindingProxy(t, ch)
	key := paymentstest.Key("quick payer voucher")
	payer := ch.Wallet("quick payer", 10*paymentstest.TON)
	cfg := contracts.ChannelConfig{Payer: payer.Address(), Payee: ch.PayeeWallet.Address(), PayerKey: pub(key),
		PayeeKey: ch.Config.PayeeKey, Nonce: 1, CloseDelay: 0}
	addr := ch.OpenOther(payer, cfg, 2*paymentstest.TON)
	id, _ := cfg.ID()
	if code := postVoucher(t, p.Handler(), addr.String(), contracts.Voucher{ChannelID: id, Seqno: 1, Total: 1}.Sign(key)); code/100 == 2 {
		t.Errorf("a voucher on a channel with no close delay: HTTP %d, want a refusal", code)
	}
	// A channel already closing.
	cfg.Nonce, cfg.CloseDelay = 2, time.Hour
	addr = ch.OpenOther(payer, cfg, 2*paymentstest.TON)
	if _, err := payments.StartClose(ch.Ctx, payer, cfg); err != nil {
		t.Fatal(err)
	}
	id, _ = cfg.ID()
	if code := postVoucher(t, p.Handler(), addr.String(), contracts.Voucher{ChannelID: id, Seqno: 1, Total: 1}.Sign(key)); code/100 == 2 {
		t.Errorf("a voucher on a closing channel: HTTP %d, want a refusal", code)
	}
	if paid := p.paidBy(hex.EncodeToString(pub(key))); paid != 0 {
		t.Errorf("refused channels count %d as paid", paid)
	}
}

// Finding 7: a third party deploys a channel naming a paying client's
// voucher key as its payer key and posts a voucher it cannot sign; the
// client's account must keep its channel and what it paid.
func TestVoucherOnAnotherChannelDoesNotHijackAccount(t *testing.T) {
	ch := paymentstest.Open(t, 3*paymentstest.TON)
	p := newFindingProxy(t, ch)
	victim := hex.EncodeToString(ch.Config.PayerKey)
	v, err := ch.Payer.Pay(120_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if code := postVoucher(t, p.Handler(), ch.Address().String(), v); code/100 != 2 {
		t.Fatalf("the client's voucher: HTTP %d", code)
	}
	if paid := p.paidBy(victim); paid != 120_000_000 {
		t.Fatalf("paid %d, want 120000000", paid)
	}
	thief := paymentstest.Key("thief voucher")
	tw := ch.Wallet("thief", 10*paymentstest.TON)
	cfg := contracts.ChannelConfig{Payer: tw.Address(), Payee: ch.PayeeWallet.Address(), PayerKey: ch.Config.PayerKey,
		PayeeKey: ch.Config.PayeeKey, Nonce: 1, CloseDelay: time.Hour}
	addr := ch.OpenOther(tw, cfg, 1*paymentstest.TON)
	id, _ := cfg.ID()
	if code := postVoucher(t, p.Handler(), addr.String(), contracts.Voucher{ChannelID: id, Seqno: 1, Total: 0}.Sign(thief)); code/100 == 2 {
		t.Errorf("a voucher not signed by the payer key: HTTP %d", code)
	}
	if paid := p.paidBy(victim); paid != 120_000_000 {
		t.Fatalf("after a third party's channel the client's account has %d paid, want 120000000", paid)
	}
}

// Finding 7: a client that rotates to a second channel keeps what it paid
// on the first: the account's paid sum covers all its channels.
func TestAccountPaidSumsAllChannels(t *testing.T) {
	ch := paymentstest.Open(t, 3*paymentstest.TON)
	p := newFindingProxy(t, ch)
	v, err := ch.Payer.Pay(120_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if code := postVoucher(t, p.Handler(), ch.Address().String(), v); code/100 != 2 {
		t.Fatalf("first channel: HTTP %d", code)
	}
	cfg := ch.Config
	cfg.Nonce = 2
	addr := ch.OpenOther(ch.PayerWallet, cfg, 2*paymentstest.TON)
	id, _ := cfg.ID()
	if code := postVoucher(t, p.Handler(), addr.String(), contracts.Voucher{ChannelID: id, Seqno: 1, Total: 50_000_000}.Sign(paymentstest.Key("payer voucher"))); code/100 != 2 {
		t.Fatalf("second channel: HTTP %d", code)
	}
	if paid := p.paidBy(hex.EncodeToString(ch.Config.PayerKey)); paid != 170_000_000 {
		t.Fatalf("paid %d over two channels, want 170000000", paid)
	}
}
