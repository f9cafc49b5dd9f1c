// Package attest decides whether a worker's keys may be trusted: it parses
// attestation evidence, verifies its signatures and certificate chains, and
// checks the result against a policy of allowed measurements and models.
//
// A worker's identity is a key [Bundle] (HPKE key, receipt-signing key, TLS
// key hash, models, validity window, and the [RuntimeConfig] that decides
// where its plaintext goes and what it charges: engine endpoint, model map,
// KEM, prices). Its SHA-256, [Bundle.Hash], is the worker's key ID
// everywhere; [Bundle.ConfigDigest] names its configuration alone. The worker asks its TEE for a report whose
// report_data is [ReportDataWithGPU] of that hash and of its GPU evidence, if
// any, and publishes them all as [Evidence].
//
// Checking evidence follows the shape of github.com/google/go-tdx-guest, one
// step per function so each can be used and tested alone, and each step
// refuses with its own error:
//
//  1. parse: [ParseEvidence], [ParseBundle] ([ErrMalformed]);
//  2. verify signatures and chains with the [Verifier] for the evidence kind
//     ([ErrUnknownKind], [ErrUntrustedKind], [ErrNoRoots], [ErrChain],
//     [ErrSignature]); [VerifyChain] is the chain step shared by every kind;
//  3. bind: the report must carry [ReportDataWithGPU] of the bundle hash
//     and the GPU evidence ([CheckReportData], [ErrReportData]);
//  4. policy: [Policy.Check] (a [*PolicyError] naming the rule, [ErrPolicy]):
//     measurements allowed per evidence kind (simulated evidence only
//     against [Policy.SimulatedMeasurements]), models, an engine on the
//     worker's machine ([LocalEngine]), allowed configuration digests;
//  5. validity: the bundle must not have expired ([ErrExpired]).
//
// Between steps 3 and 4, GPU evidence that came with the bundle is verified
// by the [Checker]'s [GPUVerifier], if it has one, and must carry the
// bundle hash as its nonce ([ErrGPU]).
//
// [Checker] runs all of them; [Cache] remembers its successes until they expire.
//
// # Evidence kinds
//
// Kind "simulated" is a software stand-in for a TEE, for development on
// machines without Intel TDX or AMD SEV-SNP. Its reports are signed by a fake
// vendor PKI derived from a seed on the developer's disk, so anyone holding
// that seed can forge evidence for any measurement: simulated evidence proves
// nothing about where code runs. It is verified by the same code path as real
// kinds, with the dev vendor root swapped in ([NewSimulatedVerifier]), and is
// never trusted by default: a [Checker] accepts it only when given a simulated
// verifier with an explicit root. The producer side, which holds the private
// keys, lives in package attest/simulated, which production roles do not import.
//
// Real kinds are further [Verifier] implementations: package attest/tdx
// (Intel TDX, with go-tdx-guest) and attest/snp (AMD SEV-SNP, with
// go-sev-guest), which are [EvidenceVerifier] implementations reading the collateral that
// travels with the evidence. GPU evidence is checked by a [GPUVerifier]
// (package attest/nvidia) and required by [Policy.RequireGPU]. Package
// attest/tsm produces real evidence on confidential guests; package
// attest/collateral fetches and caches vendor collateral.
//
// A verifier that panics on evidence (a third-party parser meeting
// malformed input) refuses it as [ErrMalformed] rather than crashing.
package attest
