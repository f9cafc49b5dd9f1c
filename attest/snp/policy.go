package snp

import (
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/google/go-sev-guest/kds"

	"github.com/cocoon-go/cocoon/attest"
)

// Rules an *attest.PolicyError from Policy.Check may name besides those of
// package attest.
const (
	RuleMigrationAgent = "migration-agent" // the guest policy allows a migration agent
	RuleTCB            = "tcb"             // the reported TCB is below the minimum
)

// Policy is what a verifier of SEV-SNP reports accepts, for use without
// attest.Checker (which applies attest.Policy and the bundle binding instead).
// The zero Policy refuses every report: no measurement is allowed.
type Policy struct {
	// Measurements are the allowed image hashes (ImageHash, the SHA-256 of
	// the 48-byte MEASUREMENT).
	Measurements [][32]byte
	// ReportData is the value report_data must equal, for example
	// attest.ReportData of the worker's bundle hash.
	ReportData [64]byte
	// MinTCB is the lowest reported TCB accepted: every component
	// (bootloader, TEE, SNP firmware, microcode) must be at least its
	// counterpart here. Zero accepts any TCB.
	MinTCB kds.TCBVersion
	// AllowDebug accepts guests whose policy allows debugging, whose memory
	// the host can read.
	AllowDebug bool
	// AllowMigrationAgent accepts guests whose policy allows a migration
	// agent, which can export their memory.
	AllowMigrationAgent bool
}

// Check applies p to a verified report, in order: debug, migration agent,
// TCB, report_data, image hash. A refusal is an *attest.PolicyError
// (attest.RuleDebug, RuleMigrationAgent, RuleTCB, attest.RuleMeasurement),
// or wraps attest.ErrReportData for the wrong report_data.
func (p *Policy) Check(r *Report) error {
	if r.Debug() && !p.AllowDebug {
		return &attest.PolicyError{Rule: attest.RuleDebug, Detail: fmt.Sprintf("guest policy %#x allows debugging", r.Policy)}
	}
	if err := CheckPlatform(r, p.MinTCB, p.AllowMigrationAgent); err != nil {
		return err
	}
	if r.ReportData != p.ReportData {
		return fmt.Errorf("%w: sev-snp report has report_data %x, want %x", attest.ErrReportData, r.ReportData, p.ReportData)
	}
	if m := ImageHash(r); !slices.Contains(p.Measurements, m) {
		return &attest.PolicyError{Rule: attest.RuleMeasurement, Detail: "image hash " + hex.EncodeToString(m[:]) + " is not allowed"}
	}
	return nil
}

// CheckPlatform applies the rules attest.Policy cannot, because attest.Claims
// does not carry what they read: a migration agent is refused unless
// allowMigrationAgent, and the reported TCB must be at least minTCB in every
// component (zero accepts any). Refusals are *attest.PolicyError naming
// RuleMigrationAgent or RuleTCB. Verifier applies it.
func CheckPlatform(r *Report, minTCB kds.TCBVersion, allowMigrationAgent bool) error {
	if r.MigrationAgent() && !allowMigrationAgent {
		return &attest.PolicyError{Rule: RuleMigrationAgent, Detail: fmt.Sprintf("guest policy %#x allows a migration agent", r.Policy)}
	}
	if !kds.TCBPartsLE(kds.DecomposeTCBVersion(minTCB), kds.DecomposeTCBVersion(r.ReportedTCB)) {
		return &attest.PolicyError{Rule: RuleTCB, Detail: fmt.Sprintf("reported TCB %s, minimum %s", TCBString(r.ReportedTCB), TCBString(minTCB))}
	}
	return nil
}
