package adversary

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"golang.org/x/net/http2"

	"github.com/cocoon-go/cocoon/attest/simulated"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/internal/testnet"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
	"github.com/cocoon-go/cocoon/worker"
)

// Lie rewrites the receipt rc a rogue worker is about to send for the
// request in env; the rogue worker signs what it returns with its own
// attested key.
type Lie func(env *seal.Envelope, rc *seal.Receipt)

// RogueWorker is a hostile test double: a worker attested like any other
// (a real worker.Worker on the network's simulated TEE, whose keys and
// evidence it shows) that lies in its receipts. It dials the proxy itself
// with the worker's TLS key and serves the worker's handler on the
// connection, rewriting each receipt with its Lie and signing it again with
// the worker's signing key, so every signature checks out and only what it
// claims is false.
type RogueWorker struct {
	*worker.Worker
	Identity *worker.Identity
	lie      Lie
}

// StartRogueWorker connects a rogue worker running eng to n's proxy until
// the test ends, and waits until the proxy has admitted it.
func StartRogueWorker(t testing.TB, n *testnet.Net, eng engine.Engine, lie Lie) *RogueWorker {
	t.Helper()
	id, err := worker.LoadIdentity(filepath.Join(t.TempDir(), "rogue"), seal.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	pin := hex.EncodeToString(n.ProxyKey[:])
	w, err := worker.New(worker.Config{Name: "rogue", Proxy: n.Links.Addr(), ProxyPin: pin}, id, eng, n.Vendor.Device(simulated.Measurement), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := &RogueWorker{Worker: w, Identity: id, lie: lie}
	cfg, err := identity.PinnedConfig(pin)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Certificates, cfg.NextProtos = []tls.Certificate{id.TLS}, []string{wire.ALPN}
	before := n.Proxy.Workers()
	conn, err := tls.Dial("tcp", n.Links.Addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", w.Handler())
	mux.HandleFunc("POST "+wire.PathRun, r.serveRun)
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&http2.Server{}).ServeConn(conn, &http2.ServeConnOpts{Context: context.Background(), Handler: mux, BaseConfig: &http.Server{}})
	}()
	t.Cleanup(func() { conn.Close(); <-done })
	waitfor.Until(t, "the proxy to admit the rogue worker", func() bool { return n.Proxy.Workers() > before })
	return r
}

// serveRun has the real worker answer, then sends its answer on with the
// receipt rewritten and signed again.
func (r *RogueWorker) serveRun(rw http.ResponseWriter, req *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(req.Body, seal.MaxEnvelope+1))
	if err != nil {
		return
	}
	env, _ := seal.ParseEnvelope(raw)
	inner := req.Clone(req.Context())
	inner.Body = io.NopCloser(bytes.NewReader(raw))
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, inner)
	for k, v := range rec.Header() {
		rw.Header()[k] = v
	}
	for rr := seal.NewRecordReader(rec.Body); ; {
		typ, payload, err := rr.Next()
		if err != nil {
			return
		}
		if rc, err := seal.ParseReceipt(payload); typ == seal.RecordReceipt && err == nil && env != nil {
			r.lie(env, rc)
			if rc.Sign(r.Identity.Signing) == nil {
				payload = rc.Marshal()
			}
		}
		seal.WriteRecord(rw, typ, payload)
	}
}
