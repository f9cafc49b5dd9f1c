package adversary

import (
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/client"
	"github.com/cocoon-go/cocoon/internal/serve"
	"github.com/cocoon-go/cocoon/node"
	"github.com/cocoon-go/cocoon/wire"
)

// shortLimits are listener limits a test can outlast.
var shortLimits = serve.Limits{HeaderTimeout: time.Second, BodyTimeout: 500 * time.Millisecond,
	WriteTimeout: time.Second, IdleTimeout: time.Second, MaxConns: 16, MaxRequests: 16}

// startNodes starts a proxy node and a client node of it, as `cocoon proxy`
// and `cocoon client` do, with listener limits l.
func startNodes(t *testing.T, l serve.Limits) (*node.Proxy, *node.Client) {
	t.Helper()
	dir := t.TempDir()
	rootPath, meas, err := node.SimulatedVendor(filepath.Join(dir, "tee"))
	if err != nil {
		t.Fatal(err)
	}
	trust := node.Trust{SimulatedRoots: []string{rootPath}, SimulatedMeasurements: []string{meas}}
	log := slog.New(slog.DiscardHandler)
	p, err := node.StartProxy(node.ProxyConfig{DataDir: filepath.Join(dir, "proxy"), Listen: "127.0.0.1:0", WorkerListen: "127.0.0.1:0",
		Trust: trust, Proxy: node.ProxyDefaults(), Limits: &l}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	c, err := node.StartClient(node.ClientConfig{DataDir: filepath.Join(dir, "client"), Listen: "127.0.0.1:0", Trust: trust,
		Client: client.Config{Proxy: "https://" + p.Addr, ProxyPin: p.Pin}, Limits: &l}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return p, c
}

// trickle posts to path over conn a body of size bytes, one byte every
// tick, and returns how long the server took to answer or hang up.
func trickle(conn net.Conn, path string, size int, tick, giveUp time.Duration) time.Duration {
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: cocoon\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", path, size)
	go func() {
		for range size {
			if _, err := conn.Write([]byte("x")); err != nil {
				return
			}
			time.Sleep(tick)
		}
	}()
	conn.SetReadDeadline(time.Now().Add(giveUp))
	io.Copy(io.Discard, conn)
	return time.Since(start)
}

// TestSlowlorisBodyIsCut: a peer that sends its envelope (to the proxy) or
// its request (to the client's API) one byte at a time is cut at the body
// deadline instead of holding a connection and a buffer for ever.
func TestSlowlorisBodyIsCut(t *testing.T) {
	p, c := startNodes(t, shortLimits)
	const giveUp = 6 * time.Second
	tc, err := tls.Dial("tcp", p.Addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if took := trickle(tc, wire.PathRequests, 10000, 50*time.Millisecond, giveUp); took >= giveUp {
		t.Errorf("proxy: a slow envelope held its client listener for %v, past the %v body deadline", took, shortLimits.BodyTimeout)
	}
	pc, err := net.Dial("tcp", c.Addr)
	if err != nil {
		t.Fatal(err)
	}
	if took := trickle(pc, "/v1/chat/completions", 10000, 50*time.Millisecond, giveUp); took >= giveUp {
		t.Errorf("client: a slow request held the OpenAI listener for %v, past the %v body deadline", took, shortLimits.BodyTimeout)
	}
}
