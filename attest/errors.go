package attest

import (
	"errors"
	"fmt"
)

// Errors returned by the steps of checking evidence. Each step refuses with
// its own error, wrapped with details of the input, so callers can tell with
// [errors.Is] which step failed.
var (
	// ErrMalformed means bytes could not be parsed: evidence, key bundle or
	// TEE report that is truncated, oversized, non-canonical or of an
	// unsupported version.
	ErrMalformed = errors.New("attest: malformed input")

	// ErrUnknownKind means the evidence is of a kind this package does not know.
	ErrUnknownKind = errors.New("attest: unknown evidence kind")

	// ErrUntrustedKind means the evidence is of a known kind for which no
	// verifier is configured, such as simulated evidence where no dev vendor
	// root was given.
	ErrUntrustedKind = errors.New("attest: evidence kind not trusted here")

	// ErrNoRoots means a verifier was configured without trusted roots.
	ErrNoRoots = errors.New("attest: no trusted roots configured")

	// ErrChain means the certificate chain in the evidence does not lead to a
	// trusted root at the time of checking, or its leaf is not fit to sign
	// reports.
	ErrChain = errors.New("attest: certificate chain not trusted")

	// ErrSignature means a report's signature does not verify.
	ErrSignature = errors.New("attest: bad signature")

	// ErrReportData means the TEE report does not carry the hash of the key
	// bundle it came with: the bundle was swapped or the report is for
	// another key.
	ErrReportData = errors.New("attest: report_data does not bind the key bundle")

	// ErrPolicy matches every [*PolicyError].
	ErrPolicy = errors.New("attest: refused by policy")

	// ErrGPU means GPU evidence came with the bundle but does not verify:
	// bad signature, untrusted key, a nonce that is not the bundle hash, or
	// a GPU that is not in confidential-computing mode. Evidence without GPU
	// evidence is refused by policy instead (RuleGPU), when the policy
	// requires a GPU.
	ErrGPU = errors.New("attest: GPU evidence refused")

	// ErrExpired means the key bundle is outside its validity window: expired,
	// or not valid yet.
	ErrExpired = errors.New("attest: key bundle expired")

	// ErrRemoteEngine means a worker was asked to send prompts to an engine
	// outside its own machine (see [LocalEngine]) without being allowed to.
	ErrRemoteEngine = errors.New("attest: engine outside the worker's machine")
)

// Rules a [*PolicyError] may name.
const (
	RuleMeasurement = "measurement" // the image hash is not on the allow-list
	RuleModel       = "model"       // a model's weights hash is not on the allow-list
	RuleDebug       = "debug"       // the TEE runs in debug mode
	RuleFreshness   = "freshness"   // the report is too old, or from the future
	RuleGPU         = "gpu"         // the policy requires a confidential-computing GPU and none was verified
	RuleEngine      = "engine"      // the worker's engine lies outside its machine
	RuleConfig      = "config"      // the worker's runtime configuration digest is not on the allow-list
)

// PolicyError is a refusal by [Policy.Check]: Rule names the rule (one of
// the Rule constants), Detail says what was seen.
type PolicyError struct {
	Rule   string
	Detail string
}

func (e *PolicyError) Error() string {
	return fmt.Sprintf("attest: refused by policy (%s): %s", e.Rule, e.Detail)
}

// Is reports whether target is [ErrPolicy].
func (e *PolicyError) Is(target error) bool { return target == ErrPolicy }

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
