package worker

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/simulated"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/price"
)

// workerOn is New with cfg on eng and a simulated TEE.
func workerOn(t *testing.T, cfg Config, eng engine.Engine) (*Worker, error) {
	t.Helper()
	vendor, err := simulated.NewVendor(bytes.Repeat([]byte{1}, simulated.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	id, err := LoadIdentity(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return New(cfg, id, eng, vendor.Device(simulated.Measurement), nil)
}

// publishedBundle is the key bundle in w's current evidence.
func publishedBundle(t *testing.T, w *Worker) *attest.Bundle {
	t.Helper()
	e, err := attest.ParseEvidence(hello(t, w).Evidence)
	if err != nil {
		t.Fatal(err)
	}
	b, err := attest.ParseBundle(e.Bundle)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWorkerRefusesRemoteEngineByDefault: a host that points the worker's
// engine at another machine (--engine-url http://10.0.0.5/...) would get
// every decrypted prompt; the worker refuses to attest that unless the
// operator allowed it, and then says so in the bundle.
func TestWorkerRefusesRemoteEngineByDefault(t *testing.T) {
	remote := &enginetest.FakeEngine{EndpointURL: "http://10.0.0.5:8000/v1"}
	if _, err := workerOn(t, Config{}, remote); !errors.Is(err, attest.ErrRemoteEngine) {
		t.Fatalf("worker on a remote engine: err = %v, want ErrRemoteEngine", err)
	}
	w, err := workerOn(t, Config{AllowRemoteEngine: true}, remote)
	if err != nil {
		t.Fatalf("remote engine allowed: %v", err)
	}
	if b := publishedBundle(t, w); b.Config.Engine != remote.EndpointURL {
		t.Errorf("attested engine %q, want %q", b.Config.Engine, remote.EndpointURL)
	}
}

// TestWorkerAttestsRuntimeConfig: the bundle carries the engine endpoint,
// the model map, the KEM and the price the worker runs with.
func TestWorkerAttestsRuntimeConfig(t *testing.T) {
	eng := &enginetest.FakeEngine{
		EndpointURL: "http://127.0.0.1:8000/v1",
		Served:      []engine.Model{{ID: "qwen3-8b", Upstream: "Qwen/Qwen3-8B", Hash: "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"}},
	}
	p := price.Price{PerToken: 7, PromptMul: price.One, CachedMul: price.One, CompletionMul: 2 * price.One}
	w, err := workerOn(t, Config{Price: p}, eng)
	if err != nil {
		t.Fatal(err)
	}
	b := publishedBundle(t, w)
	want := attest.RuntimeConfig{Engine: eng.EndpointURL, KEM: w.id.HPKE.KEM(), Price: p}
	if b.Config != want {
		t.Errorf("attested config %+v, want %+v", b.Config, want)
	}
	if len(b.Models) != 1 || b.Models[0] != (attest.Model{Name: "qwen3-8b", Upstream: "Qwen/Qwen3-8B", Hash: eng.Served[0].Hash}) {
		t.Errorf("attested models %+v", b.Models)
	}
}
