package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/simulated"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/embedded"
	"github.com/cocoon-go/cocoon/engine/remote"
	"github.com/cocoon-go/cocoon/models"
	"github.com/cocoon-go/cocoon/worker"
)

// EngineConfig chooses a worker's engine: a remote OpenAI-compatible server
// when URL is set, else the embedded engine with Model (a GGUF path) or the
// built-in default model.
type EngineConfig struct {
	URL       string            `json:"url"`        // e.g. http://127.0.0.1:8000/v1 (vLLM)
	APIKey    string            `json:"api_key"`    // sent as a bearer token
	Models    map[string]string `json:"models"`     // network name → engine's name; empty: as the engine lists them
	CacheSalt bool              `json:"cache_salt"` // send vLLM's per-client cache_salt
	Model     string            `json:"model"`      // GGUF file for the embedded engine
}

// OpenEngine opens the engine cfg describes. progress, if not nil, receives
// a progress bar while an embedded model loads.
func OpenEngine(ctx context.Context, cfg EngineConfig, progress io.Writer, log *slog.Logger) (engine.Engine, error) {
	if cfg.URL != "" {
		e, err := remote.New(ctx, remote.Config{BaseURL: cfg.URL, APIKey: cfg.APIKey, Models: cfg.Models, CacheSalt: cfg.CacheSalt})
		if err != nil {
			return nil, err
		}
		log.Info("engine: OpenAI-compatible server", "url", cfg.URL, "models", modelNames(e))
		return e, nil
	}
	opts := embedded.Options{Progress: progressBar(progress, "loading model")}
	var e *embedded.Engine
	var err error
	if cfg.Model != "" {
		log.Info("engine: embedded, loading GGUF", "path", cfg.Model)
		e, err = embedded.LoadFile(cfg.Model, opts)
	} else {
		log.Info("engine: embedded, built-in toy model (see training/README.md; point workers at a real engine for real answers)", "model", models.Name)
		e, err = embedded.Load(models.Name, models.CocoonTiny, opts)
	}
	if err != nil {
		return nil, err
	}
	log.Info("model loaded", "models", modelNames(e))
	return e, nil
}

func modelNames(e engine.Engine) string {
	var names []string
	for _, m := range e.Models() {
		names = append(names, m.ID)
	}
	return strings.Join(names, ",")
}

// progressBar draws a one-line progress bar on w, or nothing if w is nil.
func progressBar(w io.Writer, label string) func(done, total int64) {
	if w == nil {
		return nil
	}
	last := -1
	return func(done, total int64) {
		if total <= 0 {
			return
		}
		pct := int(done * 100 / total)
		if pct == last {
			return
		}
		last = pct
		bar := strings.Repeat("█", pct/4) + strings.Repeat("░", 25-pct/4)
		fmt.Fprintf(w, "\r%s %s %3d%%", label, bar, pct)
		if done >= total {
			fmt.Fprintln(w)
		}
	}
}

// WorkerConfig configures a worker node.
type WorkerConfig struct {
	DataDir string        `json:"data_dir"`
	Worker  worker.Config `json:"worker"`
	Engine  EngineConfig  `json:"engine"`
	// SimulatedTEE is the directory of a simulated-TEE vendor (its seed).
	// Workers on real TDX or SEV-SNP guests will not need it; for now every
	// worker runs with the simulated TEE, and says so loudly.
	SimulatedTEE string       `json:"simulated_tee"`
	Money        *MoneyConfig `json:"money,omitempty"`
}

// NewWorker builds a worker around eng.
func NewWorker(cfg WorkerConfig, eng engine.Engine, log *slog.Logger) (*worker.Worker, error) {
	if cfg.SimulatedTEE == "" {
		return nil, fmt.Errorf("worker: no TEE: this machine cannot produce TDX or SEV-SNP evidence yet; run with --simulated-tee DIR for development")
	}
	vendor, err := simulated.LoadVendor(cfg.SimulatedTEE)
	if err != nil {
		return nil, err
	}
	log.Warn("SIMULATED TEE: this worker's evidence is signed by a development vendor key; it proves nothing about confidentiality. Not for production.")
	id, err := worker.LoadIdentity(filepath.Join(cfg.DataDir, "keys"), cfg.Worker.KEM)
	if err != nil {
		return nil, err
	}
	var tee attest.Producer = vendor.Device(simulated.Measurement)
	return worker.New(cfg.Worker, id, eng, tee, log)
}
