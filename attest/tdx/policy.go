package tdx

import (
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/cocoon-go/cocoon/attest"
)

// Rules an *attest.PolicyError from this package may name besides those of
// package attest.
const (
	RuleTCB        = "tcb"        // the platform's TCB status is not accepted
	RuleMigratable = "migratable" // the TD has the MIGRATABLE attribute
)

// CheckAttributes refuses a TD with the MIGRATABLE attribute, unless
// allowMigratable, with an *attest.PolicyError naming RuleMigratable: a
// migratable TD's memory can be exported, through a migration TD that the
// host picks and this quote does not measure, to a machine nobody attested.
// Verifier applies it (debug is left to attest.Policy, which sees it in the
// claims).
func CheckAttributes(q *Quote, allowMigratable bool) error {
	if q.Migratable() && !allowMigratable {
		return &attest.PolicyError{Rule: RuleMigratable, Detail: fmt.Sprintf("TDATTRIBUTES %#x has MIGRATABLE set", q.TDAttributes)}
	}
	return nil
}

// Policy is what a verifier of TDX quotes accepts, for use without
// attest.Checker (which applies attest.Policy and the bundle binding instead).
type Policy struct {
	// TCBStatuses are the accepted TCB statuses; empty means UpToDate alone.
	// go-tdx-guest refuses other statuses during VerifyCollateral, so adding
	// e.g. "SWHardeningNeeded" has no effect yet.
	TCBStatuses []string
	// AllowDebug accepts debug TDs, whose memory the host can read.
	AllowDebug bool
	// ReportData is the value report_data must equal, for example
	// attest.ReportData of the worker's bundle hash.
	ReportData [64]byte
	// Measurements are the allowed image hashes (ImageHash). Empty refuses
	// every quote.
	Measurements [][32]byte
}

// CheckTCB refuses claims whose TCB status is not one of accepted (empty
// means UpToDate alone) with an *attest.PolicyError naming RuleTCB.
func CheckTCB(c *attest.Claims, accepted []string) error {
	if len(accepted) == 0 {
		accepted = []string{"UpToDate"}
	}
	if !slices.Contains(accepted, c.TCB) {
		return &attest.PolicyError{Rule: RuleTCB, Detail: fmt.Sprintf("TCB status %q, accepted %q", c.TCB, accepted)}
	}
	return nil
}

// Check applies p to the claims of a verified quote, in order: TCB status,
// debug, report_data, image hash. A refusal is an *attest.PolicyError
// (RuleTCB, attest.RuleDebug, attest.RuleMeasurement), or wraps
// attest.ErrReportData for the wrong report_data.
func (p *Policy) Check(c *attest.Claims) error {
	if err := CheckTCB(c, p.TCBStatuses); err != nil {
		return err
	}
	if c.Debug && !p.AllowDebug {
		return &attest.PolicyError{Rule: attest.RuleDebug, Detail: "TD has the DEBUG attribute"}
	}
	if c.ReportData != p.ReportData {
		return fmt.Errorf("%w: tdx quote has report_data %x, want %x", attest.ErrReportData, c.ReportData, p.ReportData)
	}
	if !slices.Contains(p.Measurements, c.Measurement) {
		return &attest.PolicyError{Rule: attest.RuleMeasurement, Detail: "image hash " + hex.EncodeToString(c.Measurement[:]) + " is not allowed"}
	}
	return nil
}
