package tdx

import (
	"context"
	"crypto/x509"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/google/go-tdx-guest/verify"
	"github.com/google/go-tdx-guest/verify/trust"

	"github.com/cocoon-go/cocoon/attest"
)

// ErrCollateral means Intel's collateral for a quote could not be fetched,
// does not verify, has expired or not yet begun at the time of checking,
// revokes the PCK chain, or does not match the quote. It wraps
// attest.ErrChain: the quote is not trusted at that time.
var ErrCollateral = fmt.Errorf("%w: tdx collateral (TCB info, QE identity, CRLs) refused", attest.ErrChain)

// Collateral is what VerifyCollateral learned from Intel's collateral.
type Collateral struct {
	// TCBStatus is the TDX TCB status of the platform ("UpToDate",
	// "SWHardeningNeeded", "OutOfDate", ...), from the TCB info level
	// matching the quote.
	TCBStatus string
	// QETCBStatus is the TCB status of the quoting enclave, from QE identity.
	QETCBStatus string
	// ValidUntil is the earliest of the PCK chain's expiry and the next
	// updates of the TCB info, QE identity and CRLs: when the verdict lapses.
	ValidUntil time.Time
}

// intelRootPEM is Intel's SGX root CA (CN=Intel SGX Root CA, valid to 2049,
// SHA-256 fingerprint 44a0196b…b674d3), the same certificate go-tdx-guest
// embeds. Passing it explicitly keeps go-tdx-guest from logging a warning on
// every quote.
//
//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

// IntelRoots returns a new pool holding Intel's SGX root CA, the root every
// genuine PCK certificate chain and collateral signature leads to.
func IntelRoots() *x509.CertPool {
	pool, err := attest.ParseRoots(intelRootPEM)
	if err != nil {
		panic("tdx: embedded Intel root: " + err.Error())
	}
	return pool
}

func rootsOrIntel(roots *x509.CertPool) *x509.CertPool {
	if roots == nil {
		return IntelRoots()
	}
	return roots
}

// timeSet pins every clock go-tdx-guest reads to now.
func timeSet(now time.Time) *verify.TimeSet {
	return &verify.TimeSet{PckCertChain: now, TcbInfo: now, QeIdentity: now, PckCrl: now, RootCaCrl: now}
}

// VerifySignature checks, at now, the quote's ECDSA signature by its
// attestation key, the QE report that certifies that key, and the PCK
// certificate chain to roots (nil means IntelRoots). It uses no collateral. A bad quote signature wraps
// attest.ErrSignature; anything else (a chain that does not lead to roots at
// now, a QE report not signed by the PCK key, an attestation key the QE report
// does not vouch for) wraps attest.ErrChain.
func VerifySignature(q *Quote, roots *x509.CertPool, now time.Time) error {
	opts := &verify.Options{TrustedRoots: rootsOrIntel(roots), Now: timeSet(now)}
	err := verify.TdxQuote(q.proto, opts)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, verify.ErrHashVerificationFail):
		return fmt.Errorf("%w: tdx quote: %w", attest.ErrSignature, err)
	default:
		return fmt.Errorf("%w: tdx quote: %w", attest.ErrChain, err)
	}
}

// VerifyCollateral fetches Intel's collateral for q through getter (a Dir, or
// an HTTPS getter for Intel PCS or a PCCS) and checks with go-tdx-guest, at
// now, the quote and PCK chain again, the PCK and root CA CRLs, and the TCB
// info and QE identity: their signatures, validity, and match with the quote.
// Collateral signatures are checked against roots too (nil means
// IntelRoots). Failures wrap ErrCollateral.
//
// go-tdx-guest refuses, in this step, any platform or QE whose TCB status is
// not UpToDate, so a Collateral returned today always says UpToDate.
func VerifyCollateral(q *Quote, getter trust.HTTPSGetter, roots *x509.CertPool, now time.Time) (*Collateral, error) {
	if getter == nil {
		return nil, fmt.Errorf("%w: no collateral getter", ErrCollateral)
	}
	rec := &recorder{getter: getter}
	opts := &verify.Options{
		GetCollateral:    true,
		CheckRevocations: true,
		Getter:           rec,
		TrustedRoots:     rootsOrIntel(roots),
		Now:              timeSet(now),
	}
	if err := verify.TdxQuote(q.proto, opts); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCollateral, err)
	}
	tdx, qe, err := verify.SupportedTcbLevelsFromCollateral(q.proto, opts)
	if err != nil {
		return nil, fmt.Errorf("%w: TCB status: %w", ErrCollateral, err)
	}
	until, err := rec.validUntil(q)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCollateral, err)
	}
	return &Collateral{TCBStatus: string(tdx.TcbStatus), QETCBStatus: string(qe.TcbStatus), ValidUntil: until}, nil
}

// recorder remembers the responses go-tdx-guest fetched, to learn when they
// expire and to make snapshots of them.
type recorder struct {
	getter trust.HTTPSGetter
	mu     sync.Mutex
	got    map[string]SnapshotEntry
	err    error // the first fetch error
}

func (r *recorder) Get(url string) (map[string][]string, []byte, error) {
	return r.GetContext(context.Background(), url)
}

func (r *recorder) GetContext(ctx context.Context, url string) (map[string][]string, []byte, error) {
	h, b, err := trust.GetWith(ctx, r.getter, url)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if r.err == nil {
			r.err = err
		}
		return h, b, err
	}
	if r.got == nil {
		r.got = make(map[string]SnapshotEntry)
	}
	e := SnapshotEntry{URL: url, Body: b}
	if v := h[issuerChainHeader(url)]; len(v) > 0 {
		e.IssuerChain = v[0]
	}
	r.got[url] = e
	return h, b, err
}

// entries returns the responses recorded, sorted by URL.
func (r *recorder) entries() []SnapshotEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	var es []SnapshotEntry
	for _, url := range slices.Sorted(maps.Keys(r.got)) {
		es = append(es, r.got[url])
	}
	return es
}

// validUntil returns the earliest expiry of the quote's PCK chain and of the
// collateral fetched.
func (r *recorder) validUntil(q *Quote) (time.Time, error) {
	var until time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (until.IsZero() || t.Before(until)) {
			until = t
		}
	}
	chain, err := verify.ExtractChainFromQuote(q.proto)
	if err != nil {
		return time.Time{}, err
	}
	for _, c := range []*x509.Certificate{chain.PCKCertificate, chain.IntermediateCertificate, chain.RootCertificate} {
		earliest(c.NotAfter)
	}
	for _, e := range r.entries() {
		t, err := nextUpdate(e.Body)
		if err != nil {
			return time.Time{}, fmt.Errorf("collateral from %s: %w", e.URL, err)
		}
		earliest(t)
	}
	return until, nil
}

// Verifier verifies TDX quotes as an attest.Verifier of kind "tdx": Parse,
// VerifySignature, VerifyCollateral, then CheckTCB against the statuses it
// accepts and CheckAttributes (no migratable TD unless WithMigratable). Its claims carry the image hash as Measurement; attest.Checker
// applies the report_data binding and attest.Policy to them.
type Verifier struct {
	getter     trust.HTTPSGetter
	roots      *x509.CertPool
	tcb        []string
	migratable bool
}

var (
	_ attest.Verifier         = (*Verifier)(nil)
	_ attest.EvidenceVerifier = (*Verifier)(nil)
)

// NewVerifier returns a verifier that fetches collateral through getter (for
// example Dir("collateral")), trusts Intel's SGX root CA, and accepts only TCB
// status UpToDate.
func NewVerifier(getter trust.HTTPSGetter) *Verifier {
	return &Verifier{getter: getter}
}

// WithRoots returns a copy of v that trusts roots instead of Intel's SGX root
// CA, for tests with a fake PKI.
func (v *Verifier) WithRoots(roots *x509.CertPool) *Verifier {
	w := *v
	w.roots = roots
	return &w
}

// WithTCBStatuses returns a copy of v that accepts the given TCB statuses
// instead of UpToDate alone (see Policy.TCBStatuses).
func (v *Verifier) WithTCBStatuses(statuses ...string) *Verifier {
	w := *v
	w.tcb = statuses
	return &w
}

// WithMigratable returns a copy of v that accepts migratable TDs, which it
// refuses by default (see CheckAttributes).
func (v *Verifier) WithMigratable() *Verifier {
	w := *v
	w.migratable = true
	return &w
}

// Kind returns attest.KindTDX.
func (v *Verifier) Kind() string { return attest.KindTDX }

// Verify parses cpu as a TDX quote and checks its signature, PCK chain and
// collateral (fetched through the verifier's getter) at now, and that its
// TCB status is accepted.
func (v *Verifier) Verify(cpu []byte, now time.Time) (*attest.Claims, error) {
	return v.verify(cpu, v.getter, now)
}

// VerifyEvidence is Verify for a quote that may come with a snapshot of
// Intel's collateral (attest.Evidence.Collateral, see Snapshot).
//
// A verifier with a getter of its own (Intel PCS, a PCCS or a directory)
// ignores the snapshot and uses its own collateral: a worker's snapshot can
// hold the oldest collateral still valid, from before a revocation or a TCB
// recovery that the verifier's own would show. A verifier without one
// (NewVerifier(nil)) verifies with the snapshot alone, and fetches nothing:
// the snapshot comes from the worker, so nothing in it may make the
// verifier reach out to a URL. Either way every response is signed by Intel
// and checked at now, so a snapshot cannot make a quote pass that Intel's
// collateral of that time would refuse.
func (v *Verifier) VerifyEvidence(e *attest.Evidence, now time.Time) (*attest.Claims, error) {
	if len(e.Collateral) == 0 || v.getter != nil {
		return v.Verify(e.CPU, now)
	}
	entries, err := ParseSnapshot(e.Collateral)
	if err != nil {
		return nil, err
	}
	return v.verify(e.CPU, NewSnapshotGetter(entries, nil), now)
}

func (v *Verifier) verify(cpu []byte, getter trust.HTTPSGetter, now time.Time) (*attest.Claims, error) {
	q, err := Parse(cpu)
	if err != nil {
		return nil, err
	}
	if err := VerifySignature(q, v.roots, now); err != nil {
		return nil, err
	}
	col, err := VerifyCollateral(q, getter, v.roots, now)
	if err != nil {
		return nil, err
	}
	c := q.Claims(col)
	if err := CheckTCB(c, v.tcb); err != nil {
		return nil, err
	}
	if err := CheckAttributes(q, v.migratable); err != nil {
		return nil, err
	}
	return c, nil
}
