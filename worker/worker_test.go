package worker

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/simulated"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/wire"
)

// slowGPU is a test double of a GPU producer whose attestation (NRAS, in
// production) takes as long as its gate stays closed.
type slowGPU struct {
	calls atomic.Int32
	gate  chan struct{}
}

func (g *slowGPU) ProduceGPU(nonce [32]byte) ([]byte, error) {
	if g.calls.Add(1) > 1 {
		<-g.gate
	}
	return append([]byte("gpu evidence for "), nonce[:]...), nil
}

// newTestWorker is a worker with cfg on a fake engine and a simulated TEE.
func newTestWorker(t *testing.T, cfg Config, opts ...Option) *Worker {
	t.Helper()
	vendor, err := simulated.NewVendor(bytes.Repeat([]byte{1}, simulated.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	id, err := LoadIdentity(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(cfg, id, &enginetest.FakeEngine{}, vendor.Device(simulated.Measurement), nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func hello(t *testing.T, w *Worker) wire.Hello {
	t.Helper()
	rec := httptest.NewRecorder()
	w.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, wire.PathHello, nil))
	var h wire.Hello
	if err := json.NewDecoder(rec.Body).Decode(&h); err != nil {
		t.Fatalf("hello: %v", err)
	}
	return h
}

// TestGPUEvidenceRefreshedInBackground checks that a worker with GPU
// evidence remakes its evidence every GPURefresh, long before its bundle's
// half-life (NRAS tokens last an hour), and that a slow attestation does not
// hold up the hello a proxy is waiting for.
func TestGPUEvidenceRefreshedInBackground(t *testing.T) {
	gpu := &slowGPU{gate: make(chan struct{})}
	w := newTestWorker(t, Config{GPU: gpu, GPURefresh: time.Millisecond})
	first := hello(t, w).Evidence
	e, err := attest.ParseEvidence(first)
	if err != nil || !bytes.HasPrefix(e.GPU, []byte("gpu evidence for ")) {
		t.Fatalf("first evidence: %v, GPU %q", err, e.GPU)
	}
	time.Sleep(5 * time.Millisecond) // past GPURefresh

	// The refresh is due and blocks on the gate: the hello answers at once
	// with the evidence it has.
	done := make(chan wire.Hello)
	go func() { done <- hello(t, w) }()
	select {
	case h := <-done:
		if !bytes.Equal(h.Evidence, first) {
			t.Error("hello during a refresh served other evidence than the current")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hello waited for the GPU attestation")
	}
	close(gpu.gate)
	deadline := time.Now().Add(5 * time.Second)
	for bytes.Equal(hello(t, w).Evidence, first) {
		if time.Now().After(deadline) {
			t.Fatal("evidence not refreshed after GPURefresh")
		}
		time.Sleep(time.Millisecond)
	}
	if n := gpu.calls.Load(); n < 2 {
		t.Errorf("GPU producer called %d times, want a new attestation", n)
	}
}

// TestEvidenceWithoutGPUKeepsBundleHalfLife checks that without GPU
// evidence the worker keeps its evidence until half its bundle's life.
func TestEvidenceWithoutGPUKeepsBundleHalfLife(t *testing.T) {
	w := newTestWorker(t, Config{GPURefresh: time.Millisecond})
	first := hello(t, w).Evidence
	time.Sleep(5 * time.Millisecond)
	hello(t, w)
	time.Sleep(5 * time.Millisecond)
	if !bytes.Equal(hello(t, w).Evidence, first) {
		t.Error("evidence without GPU evidence remade before half the bundle's life")
	}
}

// TestExpiredEvidenceWaitsForTheRefresh checks that once the evidence has
// expired a hello waits for the refresh under way and serves its result,
// rather than the expired evidence, and that hellos arriving meanwhile
// start no second refresh.
func TestExpiredEvidenceWaitsForTheRefresh(t *testing.T) {
	gpu := &slowGPU{gate: make(chan struct{})}
	w := newTestWorker(t, Config{GPU: gpu})
	w.mu.Lock()
	w.expires = time.Now().Add(-time.Second) // as if the bundle had expired
	w.mu.Unlock()
	done := make(chan wire.Hello, 2)
	go func() { done <- hello(t, w) }()
	go func() { done <- hello(t, w) }()
	select {
	case <-done:
		t.Fatal("a hello served expired evidence instead of waiting for the refresh")
	case <-time.After(50 * time.Millisecond):
	}
	close(gpu.gate)
	for range 2 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("hello still waiting after the refresh ended")
		}
	}
	if n := gpu.calls.Load(); n < 2 || n > 3 {
		t.Errorf("GPU producer called %d times: want the first attestation and one refresh (at most one more after it)", n)
	}
}
