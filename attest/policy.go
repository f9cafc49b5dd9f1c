package attest

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// DefaultMaxAge is the default freshness limit: a worker should re-attest
// (make a new bundle and report) at least this often.
const DefaultMaxAge = 24 * time.Hour

// Policy is what a client or proxy accepts from verified evidence. The zero
// Policy refuses everything: with no allowed measurement nothing passes.
type Policy struct {
	// Measurements are the image hashes allowed for real TEEs (every kind
	// but simulated). Simulated evidence is never checked against them:
	// whoever holds a development vendor's seed can make simulated evidence
	// for any measurement, production ones included.
	Measurements [][32]byte
	// SimulatedMeasurements are the image hashes allowed for simulated
	// evidence, and only for it, so that trusting a development root does
	// not make a measurement a real TEE would need acceptable, nor the
	// reverse.
	SimulatedMeasurements [][32]byte
	// Models are the allowed model weight hashes (hex). Empty allows any
	// model; otherwise every model in a bundle must be listed.
	Models []string
	// MaxAge is how old a report may be. Zero means no limit beyond the
	// bundle's expiry.
	MaxAge time.Duration
	// AllowDebug accepts TEEs in debug mode, whose memory the host can read.
	AllowDebug bool
	// RequireGPU refuses workers without verified confidential-computing
	// GPU evidence (Claims.GPU), such as a worker whose GPU is not in CC
	// mode or who has none.
	RequireGPU bool
	// AllowRemoteEngine accepts workers whose engine lies outside their own
	// machine (see [LocalEngine]): a remote engine receives every prompt in
	// the clear, outside the attested TEE.
	AllowRemoteEngine bool
	// ConfigDigests, when not empty, are the allowed runtime configurations
	// ([Bundle.ConfigDigest]); empty allows any that passes the other rules.
	ConfigDigests [][32]byte
}

// DefaultPolicy returns a policy with DefaultMaxAge and debug refused. Add
// the allowed measurements before use.
func DefaultPolicy() Policy {
	return Policy{MaxAge: DefaultMaxAge}
}

// Check applies p to verified claims about bundle b at time now. It fails
// closed, returning a [*PolicyError] naming the first rule that refused:
// measurement, debug, model, engine, config, GPU or freshness.
func (p *Policy) Check(c *Claims, b *Bundle, now time.Time) error {
	if c == nil || b == nil {
		return &PolicyError{Rule: RuleMeasurement, Detail: "no claims or bundle to check"}
	}
	allowed, what := p.Measurements, "real-TEE"
	if c.Kind == KindSimulated {
		allowed, what = p.SimulatedMeasurements, "simulated"
	}
	if len(allowed) == 0 {
		return &PolicyError{Rule: RuleMeasurement, Detail: fmt.Sprintf("policy allows no %s measurement (refusing all %s evidence)", what, c.Kind)}
	}
	if !slices.Contains(allowed, c.Measurement) {
		return &PolicyError{Rule: RuleMeasurement, Detail: fmt.Sprintf("measurement %x is not allowed for %s evidence", c.Measurement, c.Kind)}
	}
	if c.Debug && !p.AllowDebug {
		return &PolicyError{Rule: RuleDebug, Detail: c.Kind + " TEE is in debug mode"}
	}
	if len(p.Models) > 0 {
		for _, m := range b.Models {
			if m.Hash == "" || !slices.ContainsFunc(p.Models, func(h string) bool { return strings.EqualFold(h, m.Hash) }) {
				return &PolicyError{Rule: RuleModel, Detail: fmt.Sprintf("model %q with weights hash %q is not allowed", m.Name, m.Hash)}
			}
		}
	}
	if !p.AllowRemoteEngine && !LocalEngine(b.Config.Engine) {
		return &PolicyError{Rule: RuleEngine, Detail: fmt.Sprintf("engine %s lies outside the worker's machine, where it reads every prompt", b.Config.Engine)}
	}
	if d := b.ConfigDigest(); len(p.ConfigDigests) > 0 && !slices.Contains(p.ConfigDigests, d) {
		return &PolicyError{Rule: RuleConfig, Detail: fmt.Sprintf("runtime configuration %x (%s) is not allowed", d, b.ConfigString())}
	}
	if p.RequireGPU && (c.GPU == nil || len(c.GPU.GPUs) == 0) {
		return &PolicyError{Rule: RuleGPU, Detail: "no verified confidential-computing GPU evidence, and the policy requires it"}
	}
	issued := issuedAt(c, b)
	if issued.After(now.Add(MaxClockSkew)) {
		return &PolicyError{Rule: RuleFreshness, Detail: fmt.Sprintf("report issued in the future (%s, now %s)", issued.Format(time.RFC3339), now.UTC().Format(time.RFC3339))}
	}
	if p.MaxAge > 0 && now.Sub(issued) > p.MaxAge {
		return &PolicyError{Rule: RuleFreshness, Detail: fmt.Sprintf("report issued %s, older than %s", issued.Format(time.RFC3339), p.MaxAge)}
	}
	return nil
}

// issuedAt is when the evidence was made: the report's issue time, or, for
// kinds whose reports carry none, the creation time of the bundle they bind
// (set inside the TEE, so as trustworthy as the measured code).
func issuedAt(c *Claims, b *Bundle) time.Time {
	if !c.Issued.IsZero() {
		return c.Issued.UTC()
	}
	return time.Unix(b.Created, 0).UTC()
}

// ParseMeasurement decodes a hex image hash, as printed by `cocoon attest`
// and kept on allow-lists.
func ParseMeasurement(s string) ([32]byte, error) { return parseHash("measurement", s) }

// ParseConfigDigest decodes a hex runtime configuration digest, as printed
// by `cocoon attest verify` and kept on allow-lists.
func ParseConfigDigest(s string) ([32]byte, error) { return parseHash("config digest", s) }

func parseHash(what, s string) ([32]byte, error) {
	var m [32]byte
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(m) {
		return m, malformed("%s %q: want 64 hex digits", what, s)
	}
	copy(m[:], b)
	return m, nil
}
