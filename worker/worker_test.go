package worker

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"testing/synctest"
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
// evidence remakes its evidence every GPURefresh, not before, long before its
// bundle's half-life (NRAS tokens last an hour), and that a slow attestation
// does not hold up the hello a proxy is waiting for.
func TestGPUEvidenceRefreshedInBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gpu := &slowGPU{gate: make(chan struct{})}
		w := newTestWorker(t, Config{GPU: gpu, GPURefresh: time.Minute})
		first := hello(t, w).Evidence
		e, err := attest.ParseEvidence(first)
		if err != nil || !bytes.HasPrefix(e.GPU, []byte("gpu evidence for ")) {
			t.Fatalf("first evidence: %v, GPU %q", err, e.GPU)
		}
		time.Sleep(time.Minute - time.Second)
		hello(t, w)
		synctest.Wait()
		if n := gpu.calls.Load(); n != 1 {
			t.Fatalf("GPU producer called %d times before GPURefresh, want once", n)
		}
		time.Sleep(time.Second) // GPURefresh

		// The refresh is due and blocks on the gate: the hello answers at once
		// with the evidence it has.
		done := make(chan wire.Hello, 1)
		go func() { done <- hello(t, w) }()
		synctest.Wait()
		select {
		case h := <-done:
			if !bytes.Equal(h.Evidence, first) {
				t.Error("hello during a refresh served other evidence than the current")
			}
		default:
			t.Fatal("hello waited for the GPU attestation")
		}
		if n := gpu.calls.Load(); n != 2 {
			t.Fatalf("GPU producer called %d times once GPURefresh passed, want a second attestation under way", n)
		}
		close(gpu.gate)
		synctest.Wait()
		if bytes.Equal(hello(t, w).Evidence, first) {
			t.Fatal("evidence not refreshed after GPURefresh")
		}
	})
}

// TestEvidenceWithoutGPUKeepsBundleHalfLife checks that without GPU
// evidence the worker keeps its evidence until half its bundle's life,
// whatever GPURefresh says, and remakes it then.
func TestEvidenceWithoutGPUKeepsBundleHalfLife(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newTestWorker(t, Config{GPURefresh: time.Minute, BundleTTL: 24 * time.Hour})
		first := hello(t, w).Evidence
		time.Sleep(12*time.Hour - time.Second)
		hello(t, w)
		synctest.Wait()
		if !bytes.Equal(hello(t, w).Evidence, first) {
			t.Fatal("evidence without GPU evidence remade before half the bundle's life")
		}
		time.Sleep(time.Second)
		hello(t, w) // starts the refresh, answers with the evidence it has
		synctest.Wait()
		if bytes.Equal(hello(t, w).Evidence, first) {
			t.Error("evidence not remade at half the bundle's life")
		}
	})
}

// TestExpiredEvidenceWaitsForTheRefresh checks that once the evidence has
// expired a hello waits for the refresh under way and serves its result,
// rather than the expired evidence, and that hellos arriving meanwhile
// start no second refresh.
func TestExpiredEvidenceWaitsForTheRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gpu := &slowGPU{gate: make(chan struct{})}
		w := newTestWorker(t, Config{GPU: gpu})
		first := hello(t, w).Evidence
		w.mu.Lock()
		w.expires = time.Now().Add(-time.Second) // as if the bundle had expired
		w.mu.Unlock()
		done := make(chan wire.Hello, 2)
		go func() { done <- hello(t, w) }()
		go func() { done <- hello(t, w) }()
		time.Sleep(expiredWait - time.Nanosecond)
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("a hello served expired evidence instead of waiting for the refresh")
		default:
		}
		close(gpu.gate)
		synctest.Wait()
		for range 2 {
			select {
			case h := <-done:
				if bytes.Equal(h.Evidence, first) {
					t.Error("a hello that waited served the expired evidence")
				}
			default:
				t.Fatal("hello still waiting after the refresh ended")
			}
		}
		if n := gpu.calls.Load(); n != 2 {
			t.Errorf("GPU producer called %d times: want the first attestation and one refresh", n)
		}
	})
}

// TestExpiredEvidenceWaitsAtMostExpiredWait checks that a hello waits for a
// refresh that does not end at most expiredWait, then answers with what it
// has: less than a proxy waits for a hello.
func TestExpiredEvidenceWaitsAtMostExpiredWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gpu := &slowGPU{gate: make(chan struct{})}
		defer close(gpu.gate)
		w := newTestWorker(t, Config{GPU: gpu})
		w.mu.Lock()
		w.expires = time.Now().Add(-time.Second)
		w.mu.Unlock()
		done := make(chan wire.Hello, 1)
		go func() { done <- hello(t, w) }()
		time.Sleep(expiredWait - time.Nanosecond)
		synctest.Wait()
		if len(done) != 0 {
			t.Fatal("a hello gave up on the refresh before expiredWait")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if len(done) != 1 {
			t.Fatal("a hello still waiting on a stuck refresh after expiredWait")
		}
	})
}
