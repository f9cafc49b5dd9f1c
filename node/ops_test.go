package node

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cocoon-go/cocoon/client"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/internal/serve"
	"github.com/cocoon-go/cocoon/internal/waitfor"
	"github.com/cocoon-go/cocoon/metrics"
	"github.com/cocoon-go/cocoon/worker"
)

// get fetches url (any TLS certificate accepted) and returns status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// gathered is reg's series, in the exposition format's spelling, and their
// values (counters and gauges).
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := f.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[name] = m.Gauge.GetValue()
			}
		}
	}
	return out
}

func simulatedTrust(t *testing.T, dir string) Trust {
	t.Helper()
	rootPath, meas, err := SimulatedVendor(filepath.Join(dir, "tee"))
	if err != nil {
		t.Fatal(err)
	}
	return Trust{SimulatedRoots: []string{rootPath}, SimulatedMeasurements: []string{meas}}
}

// By default the proxy serves /metrics and /healthz on its client listener
// and the client on its OpenAI address; --metrics moves them off.
func TestOpsOnRoleListeners(t *testing.T) {
	dir := t.TempDir()
	trust := simulatedTrust(t, dir)
	log := slog.New(slog.DiscardHandler)
	p, err := StartProxy(ProxyConfig{DataDir: filepath.Join(dir, "proxy"), Listen: "127.0.0.1:0", WorkerListen: "127.0.0.1:0",
		Trust: trust, Proxy: ProxyDefaults()}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := StartClient(ClientConfig{DataDir: filepath.Join(dir, "client"), Listen: "127.0.0.1:0", Trust: trust,
		Client: client.Config{Proxy: "https://" + p.Addr, ProxyPin: p.Pin}, Ops: Ops{Metrics: "127.0.0.1:0"}}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p.MetricsAddr != p.Addr || c.MetricsAddr == c.Addr {
		t.Fatalf("metrics at %s (proxy on %s) and %s (client on %s)", p.MetricsAddr, p.Addr, c.MetricsAddr, c.Addr)
	}
	for _, tc := range []struct{ url, want string }{
		{"https://" + p.Addr + "/healthz", `{"role":"proxy","workers":0}`},
		{"https://" + p.Addr + "/metrics", "cocoon_proxy_workers_connected 0"},
		{"http://" + c.MetricsAddr + "/healthz", `{"role":"client"}`},
		{"http://" + c.MetricsAddr + "/metrics", "cocoon_client_requests_in_flight 0"},
	} {
		if status, body := get(t, tc.url); status != http.StatusOK || !strings.Contains(body, tc.want) {
			t.Errorf("GET %s: %d %.300s; want %s", tc.url, status, body, tc.want)
		}
	}
	// Moved off the OpenAI address, where an app would reach them.
	if status, _ := get(t, "http://"+c.Addr+"/metrics"); status != http.StatusNotFound {
		t.Errorf("the client's OpenAI address serves /metrics (%d) though --metrics moved it", status)
	}
}

func TestPprofRefusedBeyondLoopback(t *testing.T) {
	dir := t.TempDir()
	_, err := StartProxy(ProxyConfig{DataDir: filepath.Join(dir, "proxy"), Listen: "127.0.0.1:0", WorkerListen: "127.0.0.1:0",
		Trust: simulatedTrust(t, dir), Proxy: ProxyDefaults(), Ops: Ops{Pprof: "0.0.0.0:0"}}, slog.New(slog.DiscardHandler))
	if !errors.Is(err, serve.ErrRemotePprof) {
		t.Fatalf("proxy with pprof on 0.0.0.0: %v, want ErrRemotePprof", err)
	}
}

// A worker has no listener: --metrics gives it one, whose /healthz says
// whether its link to the proxy is up.
func TestWorkerHealth(t *testing.T) {
	dir := t.TempDir()
	trust := simulatedTrust(t, dir)
	log := slog.New(slog.DiscardHandler)
	p, err := StartProxy(ProxyConfig{DataDir: filepath.Join(dir, "proxy"), Listen: "127.0.0.1:0", WorkerListen: "127.0.0.1:0",
		Trust: trust, Proxy: ProxyDefaults()}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port for the worker's metrics
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunWorker(ctx, WorkerConfig{DataDir: filepath.Join(dir, "worker"), SimulatedTEE: filepath.Join(dir, "tee"),
			Worker: worker.Config{Name: "w", Proxy: p.WorkerAddr, ProxyPin: p.Pin}, Ops: Ops{Metrics: addr}},
			&enginetest.FakeEngine{}, log)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var h metrics.Health
	if !waitfor.Holds(func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false // not listening yet
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&h)
		return h.Proxy != nil && *h.Proxy
	}) {
		t.Fatalf("the worker's /healthz never said its proxy link is up: %+v", h)
	}
	if h.Role != "worker" {
		t.Errorf("health %+v", h)
	}
	if status, body := get(t, "http://"+addr+"/metrics"); status != http.StatusOK || !strings.Contains(body, "cocoon_worker_proxy_connected 1") {
		t.Errorf("worker /metrics: %d %.300s", status, body)
	}
}
