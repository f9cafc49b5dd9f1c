package proxy_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/accounts"
	"github.com/cocoon-go/cocoon/api"
	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/simulated"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/payments"
	"github.com/cocoon-go/cocoon/payments/paymentstest"
	"github.com/cocoon-go/cocoon/price"
	"github.com/cocoon-go/cocoon/proxy"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
	"github.com/cocoon-go/cocoon/worker"
)

// Finding 16: closing a paid proxy while clients' requests are being
// served and booked, and paid workers are being admitted (their channels
// opened), neither panics nor races (run with -race), and returns; the
// proxy then refuses requests.
func TestCloseWhileRequestsAndWorkersArrive(t *testing.T) {
	ch := paymentstest.Open(t, 3*paymentstest.TON)
	if _, err := ch.Chain.Fund(ch.Ctx, ch.PayeeWallet.Address(), 20*paymentstest.TON); err != nil {
		t.Fatal(err)
	}
	ch.Pay(1) // the client's channel counts for its account
	clientKey := paymentstest.Key("payer voucher")
	log := slog.New(slog.DiscardHandler)
	vendor, err := simulated.NewVendor(bytes.Repeat([]byte{3}, simulated.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	checker := attest.NewCache(&attest.Checker{Verifiers: []attest.Verifier{attest.NewSimulatedVerifier(vendor.Roots())},
		Policy: attest.Policy{SimulatedMeasurements: [][32]byte{simulated.Measurement}, MaxAge: time.Hour}, Now: time.Now})
	dir := t.TempDir()
	cert, err := identity.TLS(filepath.Join(dir, "tls.pem"), "cocoon-proxy")
	if err != nil {
		t.Fatal(err)
	}
	pin, _ := identity.CertKeyHash(cert)
	ledger, err := accounts.OpenFile(filepath.Join(dir, "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	p, err := proxy.New(proxy.Config{}, cert, checker, ledger, log, proxy.WithPayments(&proxy.Payments{Chain: ch.Chain,
		Wallet: ch.PayeeWallet, Dir: filepath.Join(dir, "channels"), VoucherKey: paymentstest.Key("proxy voucher"),
		WorkerDeposit: paymentstest.TON / 10, Clients: []*payments.Payee{ch.Payee}}))
	if err != nil {
		t.Fatal(err)
	}
	wln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer wln.Close()
	go p.ServeWorkers(wln)
	srv := httptest.NewServer(p.Handler())
	defer srv.Close()

	// Paid workers dial in, one after another, while requests come.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var mu sync.Mutex
	var recipients []seal.Recipient
	for i := range 4 {
		id, err := worker.LoadIdentity(filepath.Join(dir, fmt.Sprint("worker", i)), seal.KEMX25519)
		if err != nil {
			t.Fatal(err)
		}
		w, err := worker.New(worker.Config{Name: fmt.Sprint("worker-", i), Proxy: wln.Addr().String(), ProxyPin: hex.EncodeToString(pin[:])},
			id, &enginetest.FakeEngine{}, vendor.Device(simulated.Measurement), log,
			worker.WithPayments(&worker.Payments{Wallet: ch.Wallet(fmt.Sprint("worker wallet ", i), paymentstest.TON),
				Dir: filepath.Join(dir, fmt.Sprint("worker", i), "channels"), Journal: filepath.Join(dir, fmt.Sprint("worker", i), "books.jsonl")}))
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		recipients = append(recipients, seal.Recipient{KeyID: w.KeyID(), PublicKey: id.HPKE.PublicKey()})
		mu.Unlock()
		wg.Go(func() { w.Run(ctx) })
	}
	post := func() int {
		mu.Lock()
		to := recipients[:min(len(recipients), 3)]
		mu.Unlock()
		h := seal.Header{Endpoint: api.EndpointChat, Model: enginetest.DefaultModel, PriceCap: price.Default, MaxTokens: 16,
			Expires: time.Now().Add(time.Minute).Unix(), ClientKey: clientKey.Public().(ed25519.PublicKey), Proxy: pin}
		rand.Read(h.RequestID[:])
		raw, _, err := seal.Seal(h, []byte(`{"model":"`+enginetest.DefaultModel+`","messages":[{"role":"user","content":"hi"}],"max_tokens":16}`), to, clientKey)
		if err != nil {
			t.Error(err)
			return 0
		}
		resp, err := http.Post(srv.URL+wire.PathRequests, wire.ContentEnvelope, bytes.NewReader(raw))
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		for rr := seal.NewRecordReader(resp.Body); ; {
			if _, _, err := rr.Next(); err != nil {
				break
			}
		}
		return resp.StatusCode
	}
	var clients sync.WaitGroup
	var done atomic.Bool
	var served atomic.Int32
	for range 4 {
		clients.Go(func() {
			for !done.Load() {
				if post() == http.StatusOK {
					served.Add(1)
				}
			}
		})
	}
	waitfor.Holds(func() bool { return p.Workers() >= 2 && served.Load() >= 2 }) // under way: Close must cope however far
	if served.Load() == 0 {
		t.Fatal("no request was served before Close")
	}
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Logf("Close: %v", err) // a worker may have been cut before its last voucher
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return while requests and workers kept coming")
	}
	done.Store(true)
	clients.Wait()
	if got := post(); got != http.StatusServiceUnavailable {
		t.Errorf("a request after Close: HTTP %d, want 503", got)
	}
}
