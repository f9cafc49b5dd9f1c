package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/tdx"
)

const attestHelp = `Usage: cocoon attest COMMAND [flags]

Commands:
  verify    verify a raw TDX quote offline against saved Intel PCS collateral, print its measurements and the verdict
  measure   print the image hash to allow-list (cocoon root allow-measurement HASH), from a quote or expected values
  show      say which TEE evidence this machine can produce

Run 'cocoon attest COMMAND --help' for the flags of a command.
`

func runAttest(ctx context.Context, args []string) error {
	return runSub(ctx, "attest", attestHelp, map[string]func(context.Context, []string) error{
		"verify": runAttestVerify, "measure": runAttestMeasure, "show": runAttestShow,
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
}

// refusal is a verification refused at one step.
type refusal struct {
	step string
	err  error
}

func (r *refusal) Error() string { return fmt.Sprintf("refused at step %s: %v", r.step, r.err) }
func (r *refusal) Unwrap() error { return r.err }

func runAttestVerify(_ context.Context, args []string) error {
	fs, _ := newFlags("attest verify", "Verifies a raw TDX quote offline against Intel PCS collateral saved in --collateral\n(tcb_info_<fmspc>.json, qe_identity.json, pck_crl_*.crl, root_ca.crl and their _chain.txt files):\nparse, signature and PCK chain to Intel's root, collateral, then the policy of --allow-measurement\nand --report-data. Prints the measurements, image hash, TCB status and verdict; exits non-zero\nwhen refused, naming the step that refused.")
	quote := fs.String("tdx-quote", "", "FILE holding a raw TDX quote (required)")
	dir := fs.String("collateral", "", "DIR of saved Intel PCS responses (required)")
	atStr := fs.String("at", "", "check at this RFC3339 time instead of now (collateral expires within weeks)")
	var allow list
	fs.Var(&allow, "allow-measurement", "allowed image HASH (64 hex digits); repeatable; none: the measurement policy is not checked")
	reportData := fs.String("report-data", "", "HEX the quote's report_data must equal (up to 64 bytes, zero-padded)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *quote == "" || *dir == "" {
		return errors.New("--tdx-quote FILE and --collateral DIR are required")
	}
	at := time.Now().UTC()
	if *atStr != "" {
		t, err := time.Parse(time.RFC3339, *atStr)
		if err != nil {
			return fmt.Errorf("--at: %w", err)
		}
		at = t.UTC()
	}
	policy := tdx.Policy{}
	for _, s := range allow {
		m, err := attest.ParseMeasurement(s)
		if err != nil {
			return fmt.Errorf("--allow-measurement: %w", err)
		}
		policy.Measurements = append(policy.Measurements, m)
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
	raw, err := os.ReadFile(*quote)
	if err != nil {
		return err
	}

	v, verr := verifyTDX(raw, tdx.Dir(*dir), at, policy, wantRD)
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
func verifyTDX(raw []byte, getter tdx.Dir, at time.Time, policy tdx.Policy, wantRD *[64]byte) (*verdictJSON, error) {
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
	var notes []string
	if len(policy.Measurements) == 0 {
		policy.Measurements = [][32]byte{claims.Measurement}
		notes = append(notes, "measurement NOT checked (no --allow-measurement)")
	} else {
		notes = append(notes, "measurement allowed")
	}
	if wantRD == nil {
		policy.ReportData = claims.ReportData
		notes = append(notes, "report_data not checked (no --report-data)")
	} else {
		policy.ReportData = *wantRD
		notes = append(notes, "report_data matches")
	}
	if err := policy.Check(claims); err != nil {
		return refuse(stepPolicy, err)
	}
	v.Verdict, v.PolicyNote = "accepted", "TCB and debug checked; "+strings.Join(notes, "; ")
	return v, nil
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
	if v.TCBStatus != "" {
		line("TCB status", v.TCBStatus+" (QE "+v.QETCBStatus+")")
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
	fs, _ := newFlags("attest measure", "Prints the image hash of a TD, the measurement to allow-list with\n'cocoon root allow-measurement HASH': from a quote (--tdx-quote, not verified), or from the expected\nregister values (--mrtd and --rtmr0..3; --mrconfigid, --mrowner, --mrownerconfig default to zero).\nThe hash is SHA-256(MRTD ‖ MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ RTMR3).")
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
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
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

// teeSources are the interfaces through which a guest produces TEE evidence.
var teeSources = []struct{ path, what string }{
	{"/sys/kernel/config/tsm/report", "configfs-tsm: TDX or SEV-SNP reports through the kernel's generic interface"},
	{"/dev/tdx_guest", "Intel TDX guest device: TD reports and quotes"},
	{"/dev/sev-guest", "AMD SEV-SNP guest device: attestation reports"},
}

func runAttestShow(_ context.Context, args []string) error {
	fs, _ := newFlags("attest show", "Says what TEE evidence this machine can produce: configfs-tsm, the TDX and SEV-SNP\nguest devices, and NVIDIA GPUs.")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	found := 0
	for _, s := range teeSources {
		if _, err := os.Stat(s.path); err == nil {
			fmt.Printf("found    %-32s %s\n", s.path, s.what)
			found++
		} else {
			fmt.Printf("missing  %-32s %s\n", s.path, s.what)
		}
	}
	gpus, _ := filepath.Glob("/dev/nvidia[0-9]*")
	if len(gpus) > 0 {
		fmt.Printf("found    %-32s NVIDIA GPUs (%d); confidential-computing mode and GPU evidence are not checked yet\n", strings.Join(gpus, ","), len(gpus))
	} else {
		fmt.Printf("missing  %-32s NVIDIA GPUs\n", "/dev/nvidia*")
	}
	if found == 0 {
		fmt.Println("no TEE evidence can be produced here; workers need --simulated-tee for development")
		return nil
	}
	fmt.Println("a CPU TEE interface is present; producing evidence from it is not wired into workers yet (see docs/attestation.md)")
	return nil
}
