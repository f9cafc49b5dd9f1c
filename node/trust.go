package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-sev-guest/kds"
	"github.com/google/go-tdx-guest/verify/trust"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/collateral"
	"github.com/cocoon-go/cocoon/attest/nvidia"
	"github.com/cocoon-go/cocoon/attest/snp"
	"github.com/cocoon-go/cocoon/attest/tdx"
	"github.com/cocoon-go/cocoon/chain"
	"github.com/cocoon-go/cocoon/chain/chainspec"
)

// DefaultMaxEvidenceAge is how old evidence may be when Trust.MaxAge is empty.
const DefaultMaxEvidenceAge = 48 * time.Hour

// Trust says which workers a client or proxy accepts: the evidence kinds it
// verifies, and the policy applied to what they verify. It is also the
// policy file of `cocoon attest verify --policy`. Nothing is trusted by
// default: at least one kind, and a measurement for each kind, must be
// given.
type Trust struct {
	// SimulatedRoots are PEM files of simulated-TEE vendor roots to trust.
	// Never set in production: anyone can make such evidence. Refused
	// together with a ton: chain.
	SimulatedRoots []string `json:"simulated_roots,omitempty"`
	// SimulatedMeasurements are the image hashes allowed for simulated
	// evidence, and only for it; Measurements never apply to it.
	SimulatedMeasurements []string `json:"simulated_measurements,omitempty"`
	// TDX, when set, accepts Intel TDX quotes.
	TDX *TDXTrust `json:"tdx,omitempty"`
	// SEVSNP, when set, accepts AMD SEV-SNP reports.
	SEVSNP *SEVSNPTrust `json:"sev_snp,omitempty"`
	// GPU, when set, verifies NVIDIA GPU evidence that comes with a bundle.
	GPU *GPUTrust `json:"gpu,omitempty"`

	Measurements []string `json:"measurements"`          // image hashes allowed for real TEEs (TDX, SEV-SNP), hex
	Models       []string `json:"models,omitempty"`      // allowed model hashes, hex; empty: any
	MaxAge       string   `json:"max_age,omitempty"`     // evidence freshness, e.g. "48h"; empty: 48h
	RequireGPU   bool     `json:"require_gpu,omitempty"` // refuse workers without verified CC GPU evidence
	// ConfigDigests are the allowed worker runtime configurations (engine
	// endpoint, model map, KEM, prices; attest.Bundle.ConfigDigest), hex;
	// empty: any.
	ConfigDigests []string `json:"config_digests,omitempty"`
	// AllowRemoteEngine accepts workers whose engine is outside their own
	// machine, where it reads every prompt in the clear.
	AllowRemoteEngine bool `json:"allow_remote_engine,omitempty"`
	// Root is the address of the network's root contract, whose allow-lists
	// of worker measurements and models are added to the ones above. It is
	// read from the chain of the role's money configuration.
	Root string `json:"root,omitempty"`
}

// TDXTrust configures the verification of Intel TDX quotes.
type TDXTrust struct {
	// Collateral is where Intel's collateral (TCB info, QE identity, CRLs)
	// comes from when a quote does not bring a snapshot of it: a directory
	// of saved Intel PCS responses (see tdx.Dir), "pcs" for Intel's PCS, or
	// the https:// URL of a PCCS. Empty: only snapshots shipped with the
	// evidence are used.
	Collateral string `json:"collateral,omitempty"`
	// CacheDir keeps collateral fetched from PCS or a PCCS; empty: the
	// role's data directory's "collateral" folder.
	CacheDir string `json:"cache_dir,omitempty"`
	// TCBStatuses are the accepted TCB statuses; empty: "UpToDate".
	TCBStatuses []string `json:"tcb_statuses,omitempty"`
}

// SEVSNPTrust configures the verification of AMD SEV-SNP reports.
type SEVSNPTrust struct {
	// Roots is a directory of AMD's certificate chains (<line>.pem, see
	// snp.LoadRoots); empty: AMD's roots as embedded in go-sev-guest.
	Roots string `json:"roots,omitempty"`
	// MinTCB is the lowest reported TCB accepted from every product line,
	// as "bl=N,tee=N,snp=N,ucode=N" or a hex uint64 ("0x0" accepts any);
	// empty: snp.DefaultMinTCB of each report's line (Milan:
	// bl=3,tee=0,snp=20,ucode=209; other lines are refused until set).
	MinTCB string `json:"min_tcb,omitempty"`
	// Offline fetches nothing from AMD KDS: no missing VCEKs, and no CRLs,
	// so a revoked AMD signing key goes unnoticed. By default the verifier
	// fetches both, cached under CacheDir or the role's data directory's
	// collateral/amd folder, and refuses reports whose CRL it cannot get.
	Offline  bool   `json:"offline,omitempty"`
	CacheDir string `json:"cache_dir,omitempty"`
}

// GPUTrust configures the verification of NVIDIA GPU evidence.
type GPUTrust struct {
	// NRASKeys is a JSON Web Key Set file of NVIDIA's attestation service
	// (NRAS) signing keys, pinned by the operator.
	NRASKeys string `json:"nras_keys"`
}

// ErrSimulatedOnTON refuses a simulated TEE, trusted by a client or proxy or
// used by a worker, on a ton: chain, where money is real and simulated
// evidence proves nothing.
var ErrSimulatedOnTON = errors.New("a simulated TEE cannot be used on a ton: chain")

// checkerWithRoot is Checker for t with the root contract's allow-lists added.
func (t Trust) checkerWithRoot(dataDir string, m *MoneyConfig, log *slog.Logger) (*attest.Cache, error) {
	if err := t.CheckChain(m); err != nil {
		return nil, err
	}
	t, err := t.withRoot(context.Background(), m, log)
	if err != nil {
		return nil, err
	}
	c, err := t.NewChecker(dataDir, log)
	if err != nil {
		return nil, err
	}
	return attest.NewCache(c), nil
}

// CheckChain refuses, with ErrSimulatedOnTON, a trust that accepts simulated
// evidence together with a money configuration on a TON network.
func (t Trust) CheckChain(m *MoneyConfig) error {
	if len(t.SimulatedRoots) > 0 && m != nil && onTON(m.Chain) {
		return fmt.Errorf("trust: %w (%s): anyone holding a development vendor seed could be paid as a worker; use --trust-tdx or --trust-sev-snp", ErrSimulatedOnTON, m.Chain)
	}
	return nil
}

// onTON reports whether chain names a TON network rather than a local chain.
func onTON(chain string) bool { return strings.HasPrefix(chain, "ton:") }

// withRoot adds the root contract's allow-lists to t, read from m's chain.
func (t Trust) withRoot(ctx context.Context, m *MoneyConfig, log *slog.Logger) (Trust, error) {
	if t.Root == "" {
		return t, nil
	}
	if m == nil || m.Chain == "" {
		return t, errors.New("trust: a root contract needs a chain (--chain)")
	}
	root, err := chain.ParseAddress(t.Root)
	if err != nil {
		return t, fmt.Errorf("trust: root %q: %w", t.Root, err)
	}
	c, closer, err := chainspec.Open(ctx, m.Chain, log)
	if err != nil {
		return t, err
	}
	defer closer.Close()
	meas, models, err := RootPolicy(ctx, c, root)
	if err != nil {
		return t, err
	}
	t.Measurements = append(slices.Clone(t.Measurements), meas...)
	t.Models = append(slices.Clone(t.Models), models...)
	log.Info("trust: allow-lists read from the root contract", "root", t.Root, "measurements", len(meas), "models", len(models))
	return t, nil
}

// Policy returns the attestation policy t describes.
func (t Trust) Policy() (attest.Policy, error) {
	p := attest.Policy{Models: t.Models, MaxAge: DefaultMaxEvidenceAge, RequireGPU: t.RequireGPU, AllowRemoteEngine: t.AllowRemoteEngine}
	if t.MaxAge != "" {
		d, err := time.ParseDuration(t.MaxAge)
		if err != nil || d <= 0 {
			return p, fmt.Errorf("trust: max_age %q: want a positive duration such as 48h", t.MaxAge)
		}
		p.MaxAge = d
	}
	for _, l := range []struct {
		from  []string
		to    *[][32]byte
		parse func(string) ([32]byte, error)
	}{
		{t.Measurements, &p.Measurements, attest.ParseMeasurement},
		{t.SimulatedMeasurements, &p.SimulatedMeasurements, attest.ParseMeasurement},
		{t.ConfigDigests, &p.ConfigDigests, attest.ParseConfigDigest},
	} {
		for _, s := range l.from {
			h, err := l.parse(s)
			if err != nil {
				return p, fmt.Errorf("trust: %w", err)
			}
			*l.to = append(*l.to, h)
		}
	}
	return p, nil
}

// NewChecker builds the attestation checker for t. Fetched collateral is
// cached under dataDir unless t says otherwise.
func (t Trust) NewChecker(dataDir string, log *slog.Logger) (*attest.Checker, error) {
	p, err := t.Policy()
	if err != nil {
		return nil, err
	}
	c := &attest.Checker{Policy: p, Now: time.Now}
	for _, path := range t.SimulatedRoots {
		roots, err := attest.LoadRoots(path)
		if err != nil {
			return nil, err
		}
		log.Warn("TRUSTING A SIMULATED TEE: evidence signed by this development vendor root is accepted; it proves nothing about confidentiality. Never do this in production.", "root", path)
		c.Verifiers = append(c.Verifiers, attest.NewSimulatedVerifier(roots))
	}
	if t.TDX != nil {
		v, err := t.TDX.verifier(dataDir)
		if err != nil {
			return nil, err
		}
		c.Verifiers = append(c.Verifiers, v)
	}
	if t.SEVSNP != nil {
		v, err := t.SEVSNP.verifier(dataDir)
		if err != nil {
			return nil, err
		}
		c.Verifiers = append(c.Verifiers, v)
	}
	if t.GPU != nil {
		g, err := t.GPU.verifier()
		if err != nil {
			return nil, err
		}
		c.GPU = g
	}
	if len(c.Verifiers) == 0 {
		return nil, errors.New("trust: no evidence kind is trusted: give tdx or sev_snp settings (--trust-tdx, --trust-sev-snp), or a simulated vendor root for development")
	}
	if (t.TDX != nil || t.SEVSNP != nil) && len(p.Measurements) == 0 {
		return nil, errors.New("trust: no measurement is allowed for TDX or SEV-SNP (--allow-measurement, --root), so no such worker would be accepted")
	}
	if len(t.SimulatedRoots) > 0 && len(p.SimulatedMeasurements) == 0 {
		return nil, errors.New("trust: no simulated measurement is allowed (--allow-simulated-measurement), so no simulated worker would be accepted; real-TEE measurements never apply to simulated evidence")
	}
	if p.RequireGPU && c.GPU == nil {
		return nil, errors.New("trust: require_gpu needs gpu.nras_keys (--trust-gpu), or every worker would be refused")
	}
	return c, nil
}

func (t *TDXTrust) verifier(dataDir string) (*tdx.Verifier, error) {
	getter, err := t.Getter(dataDir)
	if err != nil {
		return nil, err
	}
	v := tdx.NewVerifier(getter)
	if len(t.TCBStatuses) > 0 {
		v = v.WithTCBStatuses(t.TCBStatuses...)
	}
	return v, nil
}

// Getter returns where Intel's collateral comes from (nil when only
// snapshots shipped with evidence are used). What it fetches from Intel PCS
// or a PCCS is cached on disk, under CacheDir or dataDir/collateral, until
// the collateral's next update, and served from there when offline.
func (t *TDXTrust) Getter(dataDir string) (trust.HTTPSGetter, error) {
	switch src := t.Collateral; {
	case src == "":
		return nil, nil
	case src == "pcs" || strings.HasPrefix(src, "https://"):
		dir := t.CacheDir
		if dir == "" {
			dir = filepath.Join(dataDir, "collateral", "intel")
		}
		cache, err := collateral.New(dir, tdx.CacheOptions(&http.Client{Timeout: collateralTimeout}))
		if err != nil {
			return nil, fmt.Errorf("trust: tdx collateral: %w", err)
		}
		base := tdx.IntelPCS
		if src != "pcs" {
			base = src
		}
		return tdx.NewPCS(base, cache), nil
	default:
		if fi, err := os.Stat(src); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("trust: tdx collateral %q: want a directory of saved Intel PCS responses, \"pcs\", or a PCCS https:// URL", src)
		}
		return tdx.Dir(src), nil
	}
}

// collateralTimeout bounds each fetch from Intel PCS, a PCCS or AMD KDS.
const collateralTimeout = 30 * time.Second

func (t *SEVSNPTrust) verifier(dataDir string) (*snp.Verifier, error) {
	var roots snp.Roots
	if t.Roots != "" {
		r, err := snp.LoadRoots(t.Roots)
		if err != nil {
			return nil, fmt.Errorf("trust: %w", err)
		}
		roots = r
	}
	v := snp.NewVerifier(roots)
	if t.MinTCB != "" {
		min, err := ParseSNPTCB(t.MinTCB)
		if err != nil {
			return nil, err
		}
		v = v.WithMinTCB(min)
	}
	if !t.Offline {
		dir := t.CacheDir
		if dir == "" {
			dir = filepath.Join(dataDir, "collateral", "amd")
		}
		cache, err := collateral.New(dir, snp.CacheOptions(&http.Client{Timeout: collateralTimeout}))
		if err != nil {
			return nil, fmt.Errorf("trust: sev_snp kds: %w", err)
		}
		v = v.WithKDS(cache.SEV()) // and AMD's CRLs
	}
	return v, nil
}

func (t *GPUTrust) verifier() (attest.GPUVerifier, error) {
	if t.NRASKeys == "" {
		return nil, errors.New("trust: gpu: nras_keys (--trust-gpu) names no JWKS file of NVIDIA attestation service keys")
	}
	keys, err := nvidia.LoadJWKS(t.NRASKeys)
	if err != nil {
		return nil, fmt.Errorf("trust: gpu: %w", err)
	}
	return nvidia.NewVerifier(keys), nil
}

// ParseSNPTCB parses an SEV-SNP TCB version written as
// "bl=N,tee=N,snp=N,ucode=N" (separated by commas or spaces, as
// snp.TCBString prints them; those left out are zero) or as a hex uint64 such as 0xdb18000000000004.
func ParseSNPTCB(s string) (kds.TCBVersion, error) {
	if strings.TrimSpace(s) == "" {
		return 0, errors.New("trust: SEV-SNP TCB is empty: want bl=N,tee=N,snp=N,ucode=N or 0xHEX")
	}
	if strings.HasPrefix(s, "0x") {
		v, err := strconv.ParseUint(s[2:], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("trust: SEV-SNP TCB %q: %w", s, err)
		}
		return kds.TCBVersion(v), nil
	}
	var parts kds.TCBParts
	for _, kv := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		k, val, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(val, 10, 8)
		if !ok || err != nil {
			return 0, fmt.Errorf("trust: SEV-SNP TCB %q: want bl=N,tee=N,snp=N,ucode=N (0-255 each) or 0xHEX", s)
		}
		switch k {
		case "bl":
			parts.BlSpl = uint8(n)
		case "tee":
			parts.TeeSpl = uint8(n)
		case "snp":
			parts.SnpSpl = uint8(n)
		case "ucode":
			parts.UcodeSpl = uint8(n)
		default:
			return 0, fmt.Errorf("trust: SEV-SNP TCB %q: unknown component %q (want bl, tee, snp, ucode)", s, k)
		}
	}
	v, err := kds.ComposeTCBParts(parts)
	if err != nil {
		return 0, fmt.Errorf("trust: SEV-SNP TCB %q: %w", s, err)
	}
	return v, nil
}
