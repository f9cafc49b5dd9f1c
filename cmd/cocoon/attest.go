package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/snp"
	"github.com/cocoon-go/cocoon/attest/tdx"
	"github.com/cocoon-go/cocoon/attest/tsm"
	"github.com/cocoon-go/cocoon/internal/atomicfile"
	"github.com/cocoon-go/cocoon/node"
	"github.com/cocoon-go/cocoon/price"
	"github.com/google/go-tdx-guest/verify/trust"
)

const attestHelp = `Usage: cocoon attest COMMAND [flags]

Commands:
  verify    verify a TDX quote, an SEV-SNP report or a worker's whole evidence bundle offline; print what it proves and the verdict
  measure   print the image hash to allow-list (cocoon root allow-measurement HASH), from a quote or expected values
  collateral  fetch Intel's collateral for a TDX quote (from PCS, a PCCS or a directory) and save it for offline use
  show      say which TEE evidence this machine can produce

Run 'cocoon attest COMMAND --help' for the flags of a command.
`

func runAttest(ctx context.Context, args []string) error {
	return runSub(ctx, "attest", attestHelp, map[string]func(context.Context, []string) error{
		"verify": runAttestVerify, "measure": runAttestMeasure, "show": runAttestShow, "collateral": runAttestCollateral,
	}, args)
}

// The steps of checking a quote, as a refusal names them.
const (
	stepParse      = "parse"
	stepSignature  = "signature"
	stepCollateral = "collateral"
	stepPolicy     = "policy"
)

// measurementsJSON are a TD's measurement registers as hex.
type measurementsJSON struct {
	MRTD          string    `json:"mrtd"`
	RTMR          [4]string `json:"rtmr"`
	MRConfigID    string    `json:"mrconfigid"`
	MROwner       string    `json:"mrowner"`
	MROwnerConfig string    `json:"mrownerconfig"`
}

// verdictJSON is what `attest verify` prints.
type verdictJSON struct {
	Verdict      string            `json:"verdict"` // "accepted" or "refused"
	Step         string            `json:"refused_at,omitempty"`
	Reason       string            `json:"reason,omitempty"`
	At           time.Time         `json:"at"`
	Measurements *measurementsJSON `json:"measurements,omitempty"`
	ImageHash    string            `json:"image_hash,omitempty"`
	Debug        bool              `json:"debug"`
	ReportData   string            `json:"report_data,omitempty"`
	TCBStatus    string            `json:"tcb_status,omitempty"`
	QETCBStatus  string            `json:"qe_tcb_status,omitempty"`
	ValidUntil   *time.Time        `json:"collateral_valid_until,omitempty"`
	PolicyNote   string            `json:"policy,omitempty"`

	// SEV-SNP reports.
	SNP *snpJSON `json:"sev_snp,omitempty"`

	// Bundles.
	Kind   string       `json:"kind,omitempty"`
	Bundle *bundleJSON  `json:"bundle,omitempty"`
	TCB    string       `json:"tcb,omitempty"`
	GPUs   []attest.GPU `json:"gpus,omitempty"`
	Until  *time.Time   `json:"valid_until,omitempty"`
}

// snpJSON is what an SEV-SNP report says.
type snpJSON struct {
	Measurement    string `json:"measurement"` // 48 bytes
	ReportedTCB    string `json:"reported_tcb"`
	Signer         string `json:"signer"`
	Policy         string `json:"guest_policy"`
	MigrationAgent bool   `json:"migration_agent"`
}

// bundleJSON is a worker's key bundle.
type bundleJSON struct {
	KeyID  string         `json:"key_id"`
	Models []attest.Model `json:"models"`
	// The runtime configuration: where plaintext goes and what is charged.
	Engine       string      `json:"engine"`
	LocalEngine  bool        `json:"engine_on_worker_machine"`
	KEM          uint16      `json:"kem"`
	Price        price.Price `json:"price"`
	ConfigDigest string      `json:"config_digest"`
	Created      time.Time   `json:"created"`
	Expires      time.Time   `json:"expires"`
	HasGPU       bool        `json:"has_gpu_evidence"`
	HasColl      bool        `json:"has_collateral"`
}

// refusal is a verification refused at one step.
type refusal struct {
	step string
	err  error
}

func (r *refusal) Error() string { return fmt.Sprintf("refused at step %s: %v", r.step, r.err) }
func (r *refusal) Unwrap() error { return r.err }

const attestVerifyHelp = `Verifies attestation evidence offline and prints what it proves:

  --tdx-quote FILE    a raw Intel TDX quote: parse, signature and PCK chain to Intel's root,
                      collateral (from --collateral DIR, or the policy's tdx.collateral), policy
  --snp-report FILE   an AMD SEV-SNP report (raw, with its certificate table, or a go-sev-guest
                      attestation proto): parse, signature and VCEK/VLEK chain to AMD's roots, policy
  --bundle FILE       a worker's whole evidence (key bundle, CPU evidence, collateral, GPU evidence;
                      a worker writes it to DATA_DIR/evidence.bin) checked as a client would, with
                      the trust settings of --policy FILE

--policy FILE is a JSON trust file, the "trust" object of a proxy or client config: measurements,
models, max_age, require_gpu, tdx {collateral, tcb_statuses}, sev_snp {roots, min_tcb, kds},
gpu {nras_keys}, simulated_roots (see docs/attestation.md). --allow-measurement adds to its measurements.
Exits non-zero when the evidence is refused, naming the step that refused it.`

func runAttestVerify(_ context.Context, args []string) error {
	fs, _ := newFlags("attest verify", attestVerifyHelp)
	quote := fs.String("tdx-quote", "", "FILE holding a raw TDX quote")
	report := fs.String("snp-report", "", "FILE holding an SEV-SNP report")
	bundle := fs.String("bundle", "", "FILE holding a worker's evidence bundle")
	policyFile := fs.String("policy", "", "JSON trust FILE (see above)")
	dir := fs.String("collateral", "", "DIR of saved Intel PCS responses (TDX)")
	vcek := fs.String("vcek", "", "DER FILE of the VCEK or VLEK certificate, for an SEV-SNP report that comes without it")
	atStr := fs.String("at", "", "check at this RFC3339 time instead of now (collateral expires within weeks)")
	var allow list
	fs.Var(&allow, "allow-measurement", "allowed image HASH (64 hex digits); repeatable; with neither this nor --policy the measurement is not checked")
	reportData := fs.String("report-data", "", "HEX the report_data must equal (up to 64 bytes, zero-padded; quotes and reports only)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	inputs := 0
	for _, in := range []string{*quote, *report, *bundle} {
		if in != "" {
			inputs++
		}
	}
	if inputs != 1 {
		return errors.New("give one of --tdx-quote FILE, --snp-report FILE or --bundle FILE")
	}
	at := time.Now().UTC()
	if *atStr != "" {
		t, err := time.Parse(time.RFC3339, *atStr)
		if err != nil {
			return fmt.Errorf("--at: %w", err)
		}
		at = t.UTC()
	}
	var pol node.Trust
	if *policyFile != "" {
		if err := node.LoadConfig(*policyFile, &pol); err != nil {
			return fmt.Errorf("--policy: %w", err)
		}
	}
	pol.Measurements = append(pol.Measurements, allow...)
	measurements, err := pol.Policy()
	if err != nil {
		return err
	}
	var wantRD *[64]byte
	if *reportData != "" {
		b, err := hex.DecodeString(*reportData)
		if err != nil || len(b) > 64 {
			return fmt.Errorf("--report-data %q: want up to 128 hex digits", *reportData)
		}
		wantRD = new([64]byte)
		copy(wantRD[:], b)
	}
	if *dir != "" {
		if pol.TDX == nil {
			pol.TDX = &node.TDXTrust{}
		}
		pol.TDX.Collateral = *dir
	}

	var v *verdictJSON
	var verr error
	switch {
	case *quote != "":
		raw, err := os.ReadFile(*quote)
		if err != nil {
			return err
		}
		if pol.TDX == nil || pol.TDX.Collateral == "" {
			return errors.New("--tdx-quote needs --collateral DIR (or tdx.collateral in --policy)")
		}
		policy := tdx.Policy{Measurements: measurements.Measurements, AllowDebug: false, TCBStatuses: pol.TDX.TCBStatuses}
		getter, err := pol.TDX.Getter(defaultDir("attest"))
		if err != nil {
			return err
		}
		v, verr = verifyTDX(raw, getter, at, policy, wantRD)
	case *report != "":
		raw, err := os.ReadFile(*report)
		if err != nil {
			return err
		}
		var endorsement []byte
		if *vcek != "" {
			if endorsement, err = os.ReadFile(*vcek); err != nil {
				return err
			}
		}
		policy := snp.Policy{Measurements: measurements.Measurements}
		var roots snp.Roots
		if s := pol.SEVSNP; s != nil {
			if s.Roots != "" {
				if roots, err = snp.LoadRoots(s.Roots); err != nil {
					return err
				}
			}
			if s.MinTCB != "" {
				if policy.MinTCB, err = node.ParseSNPTCB(s.MinTCB); err != nil {
					return err
				}
			}
		}
		v, verr = verifySNP(raw, endorsement, roots, at, policy, wantRD)
	default:
		raw, err := os.ReadFile(*bundle)
		if err != nil {
			return err
		}
		if *reportData != "" {
			return errors.New("--report-data does not apply to --bundle: its report_data must bind its own key bundle")
		}
		c, err := pol.NewChecker(defaultDir("attest"), slog.New(slog.DiscardHandler))
		if err != nil {
			return fmt.Errorf("--policy: %w", err)
		}
		c.Now = func() time.Time { return at }
		v, verr = verifyBundle(raw, c, at)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
	} else {
		fmt.Print(v.human())
	}
	return verr
}

// verifyTDX runs the steps of package tdx on raw at the given time and
// reports what each learned. Without measurements in policy, the image hash is
// reported but not checked; without wantRD, report_data is not checked.
func verifyTDX(raw []byte, getter trust.HTTPSGetter, at time.Time, policy tdx.Policy, wantRD *[64]byte) (*verdictJSON, error) {
	v := &verdictJSON{Verdict: "refused", At: at}
	refuse := func(step string, err error) (*verdictJSON, error) {
		v.Step, v.Reason = step, err.Error()
		return v, &refusal{step, err}
	}
	q, err := tdx.Parse(raw)
	if err != nil {
		return refuse(stepParse, err)
	}
	v.Measurements = measurementsOf(q)
	h := tdx.ImageHash(q)
	v.ImageHash = hex.EncodeToString(h[:])
	v.Debug = q.Debug()
	v.ReportData = hex.EncodeToString(q.ReportData[:])
	if err := tdx.VerifySignature(q, nil, at); err != nil {
		return refuse(stepSignature, err)
	}
	c, err := tdx.VerifyCollateral(q, getter, nil, at)
	if err != nil {
		return refuse(stepCollateral, err)
	}
	v.TCBStatus, v.QETCBStatus = c.TCBStatus, c.QETCBStatus
	if !c.ValidUntil.IsZero() {
		until := c.ValidUntil.UTC()
		v.ValidUntil = &until
	}

	// Policy.Check checks everything; what the flags leave out is made to
	// match the quote itself, and said so.
	claims := q.Claims(c)
	notes := fillPolicy(&policy.Measurements, &policy.ReportData, claims.Measurement, claims.ReportData, wantRD)
	if err := tdx.CheckAttributes(q, false); err != nil {
		return refuse(stepPolicy, err)
	}
	if err := policy.Check(claims); err != nil {
		return refuse(stepPolicy, err)
	}
	v.Verdict, v.PolicyNote = "accepted", "TCB, debug and migratable checked; "+strings.Join(notes, "; ")
	return v, nil
}

// fillPolicy completes a kind's policy from the flags: what they leave out
// (no measurement allowed, no report_data given) is made to match the
// evidence's own values, so it is not checked, and the notes say so.
func fillPolicy(allowed *[][32]byte, rd *[64]byte, own [32]byte, ownRD [64]byte, wantRD *[64]byte) []string {
	var notes []string
	if len(*allowed) == 0 {
		*allowed = [][32]byte{own}
		notes = append(notes, "measurement NOT checked (no --allow-measurement)")
	} else {
		notes = append(notes, "measurement allowed")
	}
	if wantRD == nil {
		*rd = ownRD
		notes = append(notes, "report_data not checked (no --report-data)")
	} else {
		*rd = *wantRD
		notes = append(notes, "report_data matches")
	}
	return notes
}

// verifySNP runs the steps of package snp on raw at the given time. Without
// measurements in policy the image hash is reported but not checked; without
// wantRD, report_data is not checked.
func verifySNP(raw, endorsement []byte, roots snp.Roots, at time.Time, policy snp.Policy, wantRD *[64]byte) (*verdictJSON, error) {
	v := &verdictJSON{Verdict: "refused", At: at, Kind: attest.KindSEVSNP}
	refuse := func(step string, err error) (*verdictJSON, error) {
		v.Step, v.Reason = step, err.Error()
		return v, &refusal{step, err}
	}
	r, err := snp.Parse(raw)
	if err != nil {
		return refuse(stepParse, err)
	}
	h := snp.ImageHash(r)
	v.ImageHash = hex.EncodeToString(h[:])
	v.Debug = r.Debug()
	v.ReportData = hex.EncodeToString(r.ReportData[:])
	v.TCB = snp.TCBString(r.ReportedTCB)
	v.SNP = &snpJSON{
		Measurement:    hex.EncodeToString(r.Measurement[:]),
		ReportedTCB:    v.TCB,
		Signer:         r.Signer.String(),
		Policy:         fmt.Sprintf("%#x", r.Policy),
		MigrationAgent: r.MigrationAgent(),
	}
	if err := snp.VerifySignature(r, endorsement, roots, at); err != nil {
		return refuse(stepSignature, err)
	}
	notes := fillPolicy(&policy.Measurements, &policy.ReportData, h, r.ReportData, wantRD)
	if err := policy.Check(r); err != nil {
		return refuse(stepPolicy, err)
	}
	v.Verdict, v.PolicyNote = "accepted", "debug, migration agent and TCB checked; "+strings.Join(notes, "; ")
	return v, nil
}

// verifyBundle checks a worker's evidence as a client would, with c, and
// reports what it can read of it even when refused.
func verifyBundle(raw []byte, c *attest.Checker, at time.Time) (*verdictJSON, error) {
	v := &verdictJSON{Verdict: "refused", At: at}
	e, err := attest.ParseEvidence(raw)
	if err == nil {
		v.Kind = e.Kind
		var b *attest.Bundle
		if b, err = attest.ParseBundle(e.Bundle); err == nil {
			id, cd := b.Hash(), b.ConfigDigest()
			v.Bundle = &bundleJSON{
				KeyID: hex.EncodeToString(id[:]), Models: b.Models,
				Engine: b.Config.Engine, LocalEngine: attest.LocalEngine(b.Config.Engine), KEM: b.Config.KEM, Price: b.Config.Price,
				ConfigDigest: hex.EncodeToString(cd[:]),
				Created:      time.Unix(b.Created, 0).UTC(), Expires: time.Unix(b.Expires, 0).UTC(),
				HasGPU: len(e.GPU) > 0, HasColl: len(e.Collateral) > 0,
			}
		}
		describeCPU(v, e)
	}
	ok, err := c.Check(raw)
	if err != nil {
		v.Step, v.Reason = bundleStep(err), err.Error()
		return v, &refusal{v.Step, err}
	}
	v.Verdict, v.PolicyNote = "accepted", "signatures, binding of the key bundle, policy and validity checked"
	if ok.Claims.Kind == attest.KindSimulated {
		v.PolicyNote += "; SIMULATED evidence: it proves nothing about confidentiality"
	}
	v.TCB = ok.Claims.TCB
	h := ok.Claims.Measurement
	v.ImageHash = hex.EncodeToString(h[:])
	v.Debug = ok.Claims.Debug
	if g := ok.Claims.GPU; g != nil {
		v.GPUs = g.GPUs
	}
	until := ok.Expires.UTC()
	v.Until = &until
	return v, nil
}

// describeCPU fills in what v can say of e's CPU evidence before it is
// verified: the measurements, for a refusal to show.
func describeCPU(v *verdictJSON, e *attest.Evidence) {
	switch e.Kind {
	case attest.KindTDX:
		if q, err := tdx.Parse(e.CPU); err == nil {
			v.Measurements = measurementsOf(q)
			h := tdx.ImageHash(q)
			v.ImageHash = hex.EncodeToString(h[:])
			v.Debug = q.Debug()
		}
	case attest.KindSEVSNP:
		if r, err := snp.Parse(e.CPU); err == nil {
			h := snp.ImageHash(r)
			v.ImageHash = hex.EncodeToString(h[:])
			v.Debug = r.Debug()
			v.TCB = snp.TCBString(r.ReportedTCB)
		}
	case attest.KindSimulated:
		if r, err := attest.ParseSimulatedReport(e.CPU); err == nil {
			v.ImageHash = hex.EncodeToString(r.Measurement[:])
			v.Debug = r.Debug
		}
	}
}

// Steps of checking a bundle, besides those of a quote.
const (
	stepKind     = "kind"     // no verifier trusted for the evidence kind
	stepBinding  = "binding"  // report_data does not bind the key bundle
	stepGPU      = "gpu"      // GPU evidence refused
	stepValidity = "validity" // the key bundle expired
)

// bundleStep names the step of attest.Checker that refused with err.
func bundleStep(err error) string {
	switch {
	case errors.Is(err, attest.ErrMalformed):
		return stepParse
	case errors.Is(err, attest.ErrUnknownKind), errors.Is(err, attest.ErrUntrustedKind):
		return stepKind
	case errors.Is(err, tdx.ErrCollateral):
		return stepCollateral
	case errors.Is(err, attest.ErrSignature), errors.Is(err, attest.ErrChain), errors.Is(err, attest.ErrNoRoots):
		return stepSignature
	case errors.Is(err, attest.ErrReportData):
		return stepBinding
	case errors.Is(err, attest.ErrGPU):
		return stepGPU
	case errors.Is(err, attest.ErrPolicy):
		return stepPolicy
	case errors.Is(err, attest.ErrExpired):
		return stepValidity
	}
	return "check"
}

func measurementsOf(q *tdx.Quote) *measurementsJSON {
	m := &measurementsJSON{
		MRTD:          hex.EncodeToString(q.MRTD[:]),
		MRConfigID:    hex.EncodeToString(q.MRConfigID[:]),
		MROwner:       hex.EncodeToString(q.MROwner[:]),
		MROwnerConfig: hex.EncodeToString(q.MROwnerConfig[:]),
	}
	for i, r := range q.RTMR {
		m.RTMR[i] = hex.EncodeToString(r[:])
	}
	return m
}

// human is the verdict as aligned lines.
func (v *verdictJSON) human() string {
	var b strings.Builder
	line := func(k, val string) { fmt.Fprintf(&b, "%-24s %s\n", k+":", val) }
	line("checked at", v.At.Format(time.RFC3339))
	if v.Kind != "" {
		line("evidence kind", v.Kind)
	}
	if b := v.Bundle; b != nil {
		line("key ID", b.KeyID)
		for _, m := range b.Models {
			s := m.Name + " " + m.Hash
			if m.Upstream != "" {
				s += " (engine's name " + m.Upstream + ")"
			}
			line("model", s)
		}
		where := "on the worker's machine"
		if !b.LocalEngine {
			where = "OUTSIDE the worker's machine: it reads every prompt in the clear"
		}
		line("engine", b.Engine+" ("+where+")")
		line("KEM", fmt.Sprintf("%#04x", b.KEM))
		line("price", fmt.Sprintf("%d nanoTON/token, multipliers prompt %d cached %d completion %d (of %d)", b.Price.PerToken, b.Price.PromptMul, b.Price.CachedMul, b.Price.CompletionMul, price.One))
		line("config digest", b.ConfigDigest+" (allow-list it with --allow-config)")
		line("bundle valid", b.Created.Format(time.RFC3339)+" to "+b.Expires.Format(time.RFC3339))
		line("collateral shipped", fmt.Sprint(b.HasColl))
		line("GPU evidence", fmt.Sprint(b.HasGPU))
	}
	if s := v.SNP; s != nil {
		line("MEASUREMENT", s.Measurement)
		line("reported TCB", s.ReportedTCB)
		line("signer", s.Signer)
		line("guest policy", s.Policy)
		line("migration agent", fmt.Sprint(s.MigrationAgent))
		line("report_data", v.ReportData)
		line("debug", fmt.Sprint(v.Debug))
	}
	if m := v.Measurements; m != nil {
		line("MRTD", m.MRTD)
		for i, r := range m.RTMR {
			line(fmt.Sprintf("RTMR%d", i), r)
		}
		line("MRCONFIGID", m.MRConfigID)
		line("MROWNER", m.MROwner)
		line("MROWNERCONFIG", m.MROwnerConfig)
		line("report_data", v.ReportData)
		line("debug", fmt.Sprint(v.Debug))
		line("image hash", v.ImageHash)
	}
	if v.Measurements == nil && v.ImageHash != "" {
		line("image hash", v.ImageHash)
	}
	if v.TCBStatus != "" {
		line("TCB status", v.TCBStatus+" (QE "+v.QETCBStatus+")")
	} else if v.TCB != "" && v.SNP == nil {
		line("TCB", v.TCB)
	}
	for _, g := range v.GPUs {
		line("GPU", strings.TrimSpace(fmt.Sprintf("%s %s %s driver %s vbios %s", g.ID, g.Arch, g.Model, g.Driver, g.VBIOS)))
	}
	if v.Until != nil {
		line("verdict holds until", v.Until.Format(time.RFC3339))
	}
	if v.ValidUntil != nil {
		line("collateral valid until", v.ValidUntil.Format(time.RFC3339))
	}
	if v.Verdict == "accepted" {
		line("policy", v.PolicyNote)
		line("verdict", "ACCEPTED")
	} else {
		line("verdict", "REFUSED at step "+v.Step)
		line("reason", v.Reason)
	}
	return b.String()
}

func runAttestMeasure(_ context.Context, args []string) error {
	fs, _ := newFlags("attest measure", "Prints the image hash of a TD or an SEV-SNP guest, the measurement to allow-list with\n'cocoon root allow-measurement HASH'. For TDX, from a quote (--tdx-quote, not verified), or from the\nexpected register values (--mrtd and --rtmr0..3; --mrconfigid, --mrowner, --mrownerconfig default to\nzero): SHA-256(MRTD ‖ MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ RTMR3).\nFor SEV-SNP, from a report (--snp-report) or the expected launch digest (--snp-measurement):\nSHA-256(MEASUREMENT).")
	quote := fs.String("tdx-quote", "", "FILE holding a raw TDX quote")
	var q tdx.Quote
	regs := []struct {
		name string
		dst  *[48]byte
	}{
		{"mrtd", &q.MRTD}, {"rtmr0", &q.RTMR[0]}, {"rtmr1", &q.RTMR[1]}, {"rtmr2", &q.RTMR[2]}, {"rtmr3", &q.RTMR[3]},
		{"mrconfigid", &q.MRConfigID}, {"mrowner", &q.MROwner}, {"mrownerconfig", &q.MROwnerConfig},
	}
	set := map[string]bool{}
	for _, r := range regs {
		fs.Func(r.name, strings.ToUpper(r.name)+" as 96 hex digits", func(s string) error {
			b, err := hex.DecodeString(s)
			if err != nil || len(b) != 48 {
				return fmt.Errorf("want 96 hex digits, got %q", s)
			}
			*r.dst = [48]byte(b)
			set[r.name] = true
			return nil
		})
	}
	snpReport := fs.String("snp-report", "", "FILE holding an SEV-SNP report (its image hash is SHA-256 of its MEASUREMENT)")
	snpMeasurement := fs.String("snp-measurement", "", "an SEV-SNP launch MEASUREMENT as 96 hex digits, e.g. from sev-snp-measure")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *snpReport != "" || *snpMeasurement != "" {
		if *quote != "" || len(set) > 0 || (*snpReport != "" && *snpMeasurement != "") {
			return errors.New("give one of --tdx-quote, TDX register values, --snp-report or --snp-measurement")
		}
		return measureSNP(*snpReport, *snpMeasurement, *asJSON)
	}
	switch {
	case *quote != "" && len(set) > 0:
		return errors.New("give --tdx-quote or register values, not both")
	case *quote != "":
		raw, err := os.ReadFile(*quote)
		if err != nil {
			return err
		}
		parsed, err := tdx.Parse(raw)
		if err != nil {
			return err
		}
		q = *parsed
	default:
		for _, need := range []string{"mrtd", "rtmr0", "rtmr1", "rtmr2", "rtmr3"} {
			if !set[need] {
				return fmt.Errorf("want --tdx-quote FILE, or --%s (with --mrtd and --rtmr0..3)", need)
			}
		}
	}
	h := tdx.ImageHash(&q)
	hash := hex.EncodeToString(h[:])
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			ImageHash    string            `json:"image_hash"`
			Measurements *measurementsJSON `json:"measurements"`
		}{hash, measurementsOf(&q)})
	}
	fmt.Printf("image hash: %s\nallow it with: cocoon root allow-measurement %s\n", hash, hash)
	return nil
}

func runAttestCollateral(_ context.Context, args []string) error {
	fs, _ := newFlags("attest collateral", "Fetches Intel's collateral for a TDX quote (TCB info, QE identity, PCK and root CA CRLs, with their\nissuer chains) and saves it: as a directory (--out DIR, the layout --collateral and tdx.collateral\nread) and/or as the snapshot a worker ships with its evidence (--snapshot FILE). Fetched responses\nare cached in --cache-dir. Collateral expires within weeks: fetch it again before then.")
	quote := fs.String("tdx-quote", "", "FILE holding a raw TDX quote (required)")
	from := fs.String("from", "pcs", `where to fetch from: "pcs" (Intel PCS), a PCCS https:// URL, or a DIR of saved responses`)
	out := fs.String("out", "", "DIR to save the collateral in")
	snapshot := fs.String("snapshot", "", "FILE to save the collateral snapshot in")
	cacheDir := fs.String("cache-dir", defaultDir("attest"), "DIR caching what is fetched from PCS or a PCCS")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *quote == "" || (*out == "" && *snapshot == "") {
		return errors.New("--tdx-quote FILE and at least one of --out DIR or --snapshot FILE are required")
	}
	raw, err := os.ReadFile(*quote)
	if err != nil {
		return err
	}
	getter, err := (&node.TDXTrust{Collateral: *from, CacheDir: filepath.Join(*cacheDir, "collateral", "intel")}).Getter(*cacheDir)
	if err != nil {
		return err
	}
	snap, err := tdx.Snapshot(raw, getter)
	if err != nil {
		return err
	}
	entries, err := tdx.ParseSnapshot(snap)
	if err != nil {
		return err
	}
	if *out != "" {
		if err := tdx.Dir(*out).Save(entries); err != nil {
			return err
		}
		fmt.Printf("saved %d responses in %s\n", len(entries), *out)
	}
	if *snapshot != "" {
		if err := atomicfile.WriteFile(*snapshot, snap, 0o644); err != nil {
			return err
		}
		fmt.Printf("saved a %d-byte snapshot in %s\n", len(snap), *snapshot)
	}
	return nil
}

// measureSNP prints the image hash of an SEV-SNP guest from a report (not
// verified) or from its expected launch measurement.
func measureSNP(report, measurement string, asJSON bool) error {
	var m [48]byte
	if report != "" {
		raw, err := os.ReadFile(report)
		if err != nil {
			return err
		}
		r, err := snp.Parse(raw)
		if err != nil {
			return err
		}
		m = r.Measurement
	} else {
		b, err := hex.DecodeString(measurement)
		if err != nil || len(b) != len(m) {
			return fmt.Errorf("--snp-measurement: want 96 hex digits, got %q", measurement)
		}
		m = [48]byte(b)
	}
	h := snp.ImageHash(&snp.Report{Measurement: m})
	hash := hex.EncodeToString(h[:])
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			ImageHash   string `json:"image_hash"`
			Measurement string `json:"measurement"`
		}{hash, hex.EncodeToString(m[:])})
	}
	fmt.Printf("image hash: %s\nallow it with: cocoon root allow-measurement %s\n", hash, hash)
	return nil
}

func runAttestShow(_ context.Context, args []string) error {
	fs, _ := newFlags("attest show", "Says what TEE evidence this machine can produce: configfs-tsm and its provider,\nthe TDX and SEV-SNP guest devices, and NVIDIA GPUs. It makes no report.")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	d := tsm.Describe()
	if *asJSON {
		if d.Devices == nil {
			d.Devices = []string{}
		}
		if d.GPUs == nil {
			d.GPUs = []string{}
		}
		out := struct {
			ReportDir string   `json:"configfs_tsm,omitempty"`
			Provider  string   `json:"provider,omitempty"`
			Devices   []string `json:"devices"`
			GPUs      []string `json:"gpus"`
			Kind      string   `json:"kind,omitempty"`
			Source    string   `json:"source,omitempty"`
			Summary   string   `json:"summary"`
		}{d.ReportDir, d.Provider, d.Devices, d.GPUs, d.Kind, d.Source, d.String()}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	found := func(what, path string, ok bool) {
		state := "missing"
		if ok {
			state = "found"
		}
		fmt.Printf("%-8s %-32s %s\n", state, path, what)
	}
	found("configfs-tsm: TDX or SEV-SNP reports through the kernel's generic interface", tsm.ReportDir, d.ReportDir != "")
	if d.Provider != "" {
		fmt.Printf("%-8s %-32s %s\n", "", "", "provider: "+d.Provider)
	}
	found("Intel TDX guest device", tsm.TDXDevice, slices.ContainsFunc(d.Devices, func(p string) bool { return strings.HasSuffix(p, tsm.TDXDevice) }))
	found("AMD SEV-SNP guest device", tsm.SEVSNPDevice, slices.ContainsFunc(d.Devices, func(p string) bool { return strings.HasSuffix(p, tsm.SEVSNPDevice) }))
	found(fmt.Sprintf("NVIDIA GPUs (%d); GPU evidence needs a worker built with -tags nvml", len(d.GPUs)), "/dev/nvidia*", len(d.GPUs) > 0)
	fmt.Println(d.String())
	return nil
}
