package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/google/go-tdx-guest/verify/trust"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/nvidia"
	"github.com/cocoon-go/cocoon/attest/simulated"
	"github.com/cocoon-go/cocoon/attest/tdx"
	"github.com/cocoon-go/cocoon/attest/tsm"
	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/embedded"
	"github.com/cocoon-go/cocoon/engine/remote"
	"github.com/cocoon-go/cocoon/metrics"
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
	// When set, the worker runs with the simulated TEE, and says so loudly.
	// When empty, the worker detects the TEE it runs in (configfs-tsm or
	// the TDX and SEV-SNP guest devices) and refuses to start without one.
	SimulatedTEE string `json:"simulated_tee"`
	// TDXCollateral, for a worker on a TDX guest, is where to fetch Intel's
	// collateral for its quotes (a directory, "pcs", or a PCCS https://
	// URL); a snapshot travels with the evidence so that clients without
	// PCS access can verify it. Empty: quotes travel alone.
	TDXCollateral string `json:"tdx_collateral,omitempty"`
	// GPU, if "nvml", adds evidence of the machine's NVIDIA GPUs in
	// confidential-computing mode, read through NVML (a binary built with
	// -tags nvml) and verified by NVIDIA's attestation service at NRASURL
	// (empty: NVIDIA's public service). Empty: no GPU evidence.
	GPU     string       `json:"gpu,omitempty"`
	NRASURL string       `json:"nras_url,omitempty"`
	Money   *MoneyConfig `json:"money,omitempty"`
	// Root is the root contract's address, for a worker paid by channel:
	// its workerCloseDelay and worker_fee (what proxies pay per token) are
	// read from it. "": the defaults of worker.Payments.
	Root string `json:"root,omitempty"`
	// Ops is what the worker serves its operator (RunWorker): a worker has
	// no listener of its own, so metrics and health only on Ops.Metrics.
	Ops Ops `json:"ops"`
}

// RunWorker builds a worker as NewWorker does, with its metrics, serves
// what cfg.Ops asks for, and runs the worker until ctx is done.
func RunWorker(ctx context.Context, cfg WorkerConfig, eng engine.Engine, log *slog.Logger, opts ...worker.Option) error {
	reg := cfg.Ops.registry()
	var built atomic.Pointer[worker.Worker]
	ops, err := startOps(cfg.Ops, reg, func() metrics.Health {
		up := false
		if w := built.Load(); w != nil {
			up = w.Linked()
		}
		return metrics.Health{Role: "worker", Proxy: &up}
	}, log)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer ops.close()
	w, err := NewWorker(cfg, eng, log, append([]worker.Option{worker.WithMetrics(metrics.NewWorker(reg))}, opts...)...)
	if err != nil {
		return err
	}
	built.Store(w)
	return w.Run(ctx)
}

// NewWorker builds a worker around eng, with the TEE that cfg names or that
// this machine has, and what opts choose (worker.WithPayments of
// WorkerMoney's payments, for a worker paid by channel).
func NewWorker(cfg WorkerConfig, eng engine.Engine, log *slog.Logger, opts ...worker.Option) (*worker.Worker, error) {
	tee, err := workerTEE(cfg, log)
	if err != nil {
		return nil, err
	}
	id, err := worker.LoadIdentity(filepath.Join(cfg.DataDir, "keys"), cfg.Worker.KEM)
	if err != nil {
		return nil, err
	}
	if cfg.GPU != "" {
		if cfg.GPU != "nvml" {
			return nil, fmt.Errorf("worker: gpu %q: want \"nvml\" or nothing", cfg.GPU)
		}
		collector, err := nvmlCollector()
		if err != nil {
			return nil, fmt.Errorf("worker: gpu: %w", err)
		}
		cfg.Worker.GPU = &nvidia.Producer{Collector: collector, NRAS: &nvidia.NRAS{URL: cfg.NRASURL}}
	}
	if cfg.Worker.EvidenceFile == "" {
		cfg.Worker.EvidenceFile = filepath.Join(cfg.DataDir, "evidence.bin")
	}
	return worker.New(cfg.Worker, id, eng, tee, log, opts...)
}

// workerTEE returns the simulated TEE if cfg asks for it, and otherwise
// the TEE this machine has.
func workerTEE(cfg WorkerConfig, log *slog.Logger) (attest.Producer, error) {
	if cfg.SimulatedTEE != "" {
		if cfg.Money != nil && onTON(cfg.Money.Chain) {
			return nil, fmt.Errorf("worker: %w (%s)", ErrSimulatedOnTON, cfg.Money.Chain)
		}
		vendor, err := simulated.LoadVendor(cfg.SimulatedTEE)
		if err != nil {
			return nil, err
		}
		log.Warn("SIMULATED TEE: this worker's evidence is signed by a development vendor key; it proves nothing about confidentiality. Not for production.")
		return vendor.Device(simulated.Measurement), nil
	}
	p, err := tsm.Detect()
	if err != nil {
		if errors.Is(err, tsm.ErrNoTEE) {
			return nil, fmt.Errorf("worker: no TEE: %w; on a machine without TDX or SEV-SNP, run with --simulated-tee DIR for development", err)
		}
		return nil, fmt.Errorf("worker: %w", err)
	}
	log.Info("TEE detected", "kind", p.Kind(), "source", p.Source())
	if p.Kind() == attest.KindTDX && cfg.TDXCollateral != "" {
		getter, err := (&TDXTrust{Collateral: cfg.TDXCollateral}).Getter(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		return &tdxWithCollateral{Producer: p, getter: getter}, nil
	}
	return p, nil
}

// tdxWithCollateral is a TDX producer that ships a snapshot of Intel's
// collateral for each quote, fetched through getter.
type tdxWithCollateral struct {
	*tsm.Producer
	getter trust.HTTPSGetter
}

// Collateral returns the snapshot of Intel's collateral for quote.
func (p *tdxWithCollateral) Collateral(quote []byte) ([]byte, error) {
	return tdx.Snapshot(quote, p.getter)
}
