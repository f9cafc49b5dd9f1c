package testnet

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"

	"golang.org/x/net/http2"

	"github.com/cocoon-go/cocoon/attest/simulated"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/identity"
	"github.com/cocoon-go/cocoon/seal"
	"github.com/cocoon-go/cocoon/wire"
	"github.com/cocoon-go/cocoon/worker"
)

// MaliciousProxy is a hostile test double: a proxy that admits whatever
// worker dials it, checks nothing, and relays any envelope the test hands
// it, as a proxy billing requests bound to another proxy would.
type MaliciousProxy struct {
	Addr string   // where workers dial it
	Pin  string   // hex hash of its TLS key, as workers pin it
	Key  [32]byte // the same hash
	ln   net.Listener
	cc   chan *http2.ClientConn
}

// StartMaliciousProxy listens on loopback until the test ends.
func StartMaliciousProxy(t testing.TB) *MaliciousProxy {
	t.Helper()
	cert, err := identity.TLS(filepath.Join(t.TempDir(), "tls.pem"), "malicious-proxy")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := identity.CertKeyHash(cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &MaliciousProxy{Addr: ln.Addr().String(), Pin: hex.EncodeToString(key[:]), Key: key, ln: ln, cc: make(chan *http2.ClientConn, 8)}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert, NextProtos: []string{wire.ALPN}, MinVersion: tls.VersionTLS13}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				conn := tls.Server(c, cfg)
				if conn.Handshake() != nil {
					conn.Close()
					return
				}
				cc, err := (&http2.Transport{}).NewClientConn(conn)
				if err != nil {
					conn.Close()
					return
				}
				m.cc <- cc
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return m
}

// Relay sends raw to the next worker that dialed the proxy and returns the
// worker's first record.
func (m *MaliciousProxy) Relay(ctx context.Context, raw []byte) (seal.RecordType, []byte, error) {
	return m.send(ctx, raw, false)
}

// Take sends raw to the next worker that dialed the proxy and reads its
// whole answer, as a proxy that takes answers would, returning the last
// record: the receipt, or an error.
func (m *MaliciousProxy) Take(ctx context.Context, raw []byte) (seal.RecordType, []byte, error) {
	return m.send(ctx, raw, true)
}

// send relays raw and returns the first record, or with whole the first
// that is not a chunk.
func (m *MaliciousProxy) send(ctx context.Context, raw []byte, whole bool) (seal.RecordType, []byte, error) {
	var cc *http2.ClientConn
	select {
	case cc = <-m.cc:
		defer func() { m.cc <- cc }()
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://worker"+wire.PathRun, bytes.NewReader(raw))
	req.Header.Set("Content-Type", wire.ContentEnvelope)
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	rr := seal.NewRecordReader(resp.Body)
	for {
		typ, payload, err := rr.Next()
		if !whole || err != nil || typ != seal.RecordChunk {
			return typ, payload, err
		}
	}
}

// StartWorker runs one more worker with eng, attested by n's simulated
// vendor, dialing proxyAddr with pin, with what opts choose
// (worker.WithPayments), until the test ends.
func (n *Net) StartWorker(t testing.TB, name string, eng engine.Engine, proxyAddr, pin string, opts ...worker.Option) (*worker.Worker, *worker.Identity) {
	t.Helper()
	id, err := worker.LoadIdentity(filepath.Join(t.TempDir(), name), seal.KEMX25519)
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{Name: name, Proxy: proxyAddr, ProxyPin: pin}, id, eng, n.Vendor.Device(simulated.Measurement), n.log.With("role", name), opts...)
	if err != nil {
		t.Fatal(fmt.Errorf("testnet: worker %s: %w", name, err))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w, id
}
