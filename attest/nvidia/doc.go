// Package nvidia verifies NVIDIA GPU confidential-computing evidence (Hopper
// and Blackwell in CC mode) bound to a worker's key bundle, as the verdict of
// NVIDIA's Remote Attestation Service (NRAS), checked offline against pinned
// NRAS keys.
//
// # What is verified
//
// A worker's GPU evidence ([Evidence], the attest.Evidence.GPU bytes) is
// what NRAS's POST /v3/attest/gpu returned for its GPUs: an overall EAT, a
// JWT whose submods claim lists the SHA-256 of one detached EAT per GPU
// ("GPU-0", …), and those detached tokens. [Verifier], an
// attest.GPUVerifier, checks it in steps, each refusing with its own error
// (all wrap attest.ErrGPU, or attest.ErrMalformed for bytes that do not
// parse):
//
//  1. parse: [ParseEvidence];
//  2. tokens: [VerifyTokens] — every token signed with ES384 (no other
//     algorithm, never "none") by the pinned key its kid names
//     ([ErrUnknownKey], [ErrSignature]), from the expected issuer
//     ([ErrIssuer]), within exp, nbf and iat at the time of checking
//     ([ErrTokenTime]), and the detached tokens exactly those whose digests
//     the overall token lists ([ErrSubmods]);
//  3. bind: [CheckNonce] — every token's eat_nonce is the key bundle's hash
//     ([ErrNonce]);
//  4. verdict: [CheckGPUs] — x-nvidia-overall-att-result is true and every
//     GPU passes [CheckGPU]: measres "success", dbgstat disabled, secboot,
//     the report's signature, nonce and architecture checks, the driver and
//     VBIOS reference measurements (RIMs) fetched and verified, the
//     certificate chains valid, no warning (a [*ClaimError] naming the GPU
//     and the claim).
//
// The verdict holds until the earliest token expiry (NRAS issues tokens for
// an hour), which becomes attest.GPUClaims.ValidUntil.
//
// # Nonce binding
//
// The producer asks each GPU for a report whose nonce is the key bundle's
// hash (attest.Bundle.Hash), and sends NRAS the same value as lowercase hex.
// NRAS checks the report carries it (x-nvidia-gpu-attestation-report-nonce-match)
// and echoes it as eat_nonce in every token, so a verdict for one bundle
// cannot be replayed for another.
//
// NRAS has no claim of its own for CC mode. The producer's NVML collector
// (build tag nvml) refuses to collect unless CC mode is on, in production,
// with dev-tools mode off; on the verifier's side a GPU whose firmware
// state differs from NVIDIA's reference fails measres, and one open to
// debugging fails dbgstat.
//
// # Pinning NRAS keys
//
// NRAS signs with EC P-384 keys published as a JWKS at
// https://nras.attestation.nvidia.com/.well-known/jwks.json. This package
// embeds none and never fetches them: keys rotate, and a verifier that
// downloads whatever keys the network offers trusts the network. Operators
// fetch the JWKS over TLS from NVIDIA, review it, and pin the file
// ([LoadJWKS]); evidence signed by a key not in it is refused with
// [ErrUnknownKey], so the file must be refreshed when NVIDIA rotates keys,
// which it does often (its signing certificates, in each key's x5c, are
// valid for days). Pinning NRAS's CA and checking each key's x5c chain to
// it would lift that chore; this package does not do it yet.
//
// # Producing evidence
//
// [Producer], an attest.GPUProducer, asks a [Collector] for each GPU's
// attestation report and certificate chain for the nonce, sends them to NRAS
// ([NRAS]) and returns NRAS's tokens in wire form. The NVML-backed
// collector, NVMLCollector, needs cgo and is built only with -tags nvml.
//
// # Local verification
//
// Checking the GPU evidence without NRAS would need what NRAS does: verify
// the GPU's certificate chain (from the device's attestation key through
// its per-chip certificates) to NVIDIA's device identity root CA, with OCSP
// at NVIDIA's responder for each certificate; verify the SPDM attestation
// report's signature with the leaf key and that it carries the nonce; fetch
// the driver and VBIOS reference integrity manifests (RIMs) for the
// reported versions from NVIDIA's RIM service, verify their signatures and
// chains (also with OCSP); and compare every measurement in the report with
// the RIMs' golden values. That trades NVIDIA's online verdict for
// NVIDIA's online collateral; this package leaves it to a later kind.
package nvidia
