package tdx

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-tdx-guest/pcs"
	"github.com/google/go-tdx-guest/verify"
	"github.com/google/go-tdx-guest/verify/trust"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/internal/binenc"
)

// Limits of a collateral snapshot. go-tdx-guest fetches five responses per
// quote (TCB info, QE identity, PCK CRL, root CA CRL), all of a few KiB.
const (
	MaxSnapshotSize    = 512 << 10 // bytes of an encoded snapshot, as attest.Evidence.Collateral allows
	maxSnapshotEntries = 16
	maxSnapshotURL     = 2 << 10
	maxIssuerChain     = 16 << 10
)

const (
	snapshotMagic   = "CCTS"
	snapshotVersion = 1
)

// ErrNotInSnapshot means a snapshot getter without a fallback was asked for
// a URL the snapshot does not hold.
var ErrNotInSnapshot = errors.New("tdx: collateral not in snapshot")

// SnapshotEntry is one response in a collateral snapshot: the URL
// go-tdx-guest asked for (an Intel PCS URL, whatever served it), the value
// of the response's issuer-chain header (URL-encoded PEM, empty for the
// root CA CRL, which has none) and the body.
type SnapshotEntry struct {
	URL         string
	IssuerChain string
	Body        []byte
}

// Snapshot fetches, through getter, Intel's collateral for quote, recording
// exactly the responses go-tdx-guest asks for, and returns them encoded by
// MarshalSnapshot: what a worker ships as attest.Evidence.Collateral so that
// clients without Intel PCS access can verify its quote.
//
// The snapshot records, it does not judge: verification errors after the
// collateral was fetched (such as collateral that has already expired) are
// ignored, since a verifier checks the snapshot at its own clock. It fails
// only if the quote does not parse or the collateral cannot be fetched.
func Snapshot(quote []byte, getter trust.HTTPSGetter) ([]byte, error) {
	q, err := Parse(quote)
	if err != nil {
		return nil, err
	}
	rec := &recorder{getter: getter}
	opts := &verify.Options{GetCollateral: true, CheckRevocations: true, Getter: rec, TrustedRoots: IntelRoots(), Now: timeSet(time.Now())}
	verr := verify.TdxQuote(q.proto, opts)
	entries := rec.entries()
	if !complete(entries) {
		if rec.err != nil {
			verr = rec.err
		}
		return nil, fmt.Errorf("%w: snapshot: collateral incomplete (%d responses): %w", ErrCollateral, len(entries), verr)
	}
	return MarshalSnapshot(entries)
}

// complete reports whether entries hold the four kinds of collateral
// go-tdx-guest fetches with revocation checks on.
func complete(entries []SnapshotEntry) bool {
	var tcb, qe, pck, root bool
	for _, e := range entries {
		switch {
		case strings.HasPrefix(e.URL, pcs.TdxBaseURL+"/tcb?"):
			tcb = true
		case e.URL == pcs.QeIdentityURL():
			qe = true
		case strings.HasPrefix(e.URL, pcs.SgxBaseURL+"/pckcrl?"):
			pck = true
		default:
			root = true
		}
	}
	return tcb && qe && pck && root
}

// MarshalSnapshot encodes entries in their canonical form:
//
//	"CCTS" 0x01 ‖ count (uint16) ‖ count × (URL ‖ issuer chain ‖ body)
//
// each a uint32 length and bytes, the entries sorted by URL. It refuses
// duplicate URLs and anything over the limits ParseSnapshot applies.
func MarshalSnapshot(entries []SnapshotEntry) ([]byte, error) {
	sorted := slices.SortedFunc(slices.Values(entries), func(a, b SnapshotEntry) int { return cmp.Compare(a.URL, b.URL) })
	if len(sorted) == 0 || len(sorted) > maxSnapshotEntries {
		return nil, fmt.Errorf("%w: tdx snapshot of %d entries (1 to %d)", attest.ErrMalformed, len(sorted), maxSnapshotEntries)
	}
	b := binenc.AppendMagic(nil, snapshotMagic, snapshotVersion)
	b = binenc.AppendU16(b, uint16(len(sorted)))
	for i, e := range sorted {
		if i > 0 && e.URL == sorted[i-1].URL {
			return nil, fmt.Errorf("%w: tdx snapshot: %q twice", attest.ErrMalformed, e.URL)
		}
		if len(e.URL) == 0 || len(e.URL) > maxSnapshotURL || len(e.IssuerChain) > maxIssuerChain || len(e.Body) == 0 {
			return nil, fmt.Errorf("%w: tdx snapshot: entry %.80q out of limits", attest.ErrMalformed, e.URL)
		}
		b = binenc.AppendBytes(b, []byte(e.URL))
		b = binenc.AppendBytes(b, []byte(e.IssuerChain))
		b = binenc.AppendBytes(b, e.Body)
	}
	if len(b) > MaxSnapshotSize {
		return nil, fmt.Errorf("%w: tdx snapshot of %d bytes (limit %d)", attest.ErrMalformed, len(b), MaxSnapshotSize)
	}
	return b, nil
}

// ParseSnapshot decodes a snapshot encoded by MarshalSnapshot, accepting
// only the canonical form: entries sorted by URL without duplicates, every
// length within its limit, nothing left over. It does not verify the
// collateral; the verifier does. Failures wrap attest.ErrMalformed.
func ParseSnapshot(p []byte) ([]SnapshotEntry, error) {
	if len(p) > MaxSnapshotSize {
		return nil, fmt.Errorf("%w: tdx snapshot of %d bytes (limit %d)", attest.ErrMalformed, len(p), MaxSnapshotSize)
	}
	d := binenc.NewDecoder(p)
	d.Magic(snapshotMagic, snapshotVersion)
	n := int(d.U16("count"))
	if d.Err() == nil && (n == 0 || n > maxSnapshotEntries) {
		d.Failf("%d entries (1 to %d)", n, maxSnapshotEntries)
	}
	var entries []SnapshotEntry
	for i := 0; i < n && d.Err() == nil; i++ {
		e := SnapshotEntry{
			URL:         string(d.BytesNoCopy("url", 1, maxSnapshotURL)),
			IssuerChain: string(d.BytesNoCopy("issuer chain", 0, maxIssuerChain)),
			Body:        d.Bytes("body", 1, MaxSnapshotSize),
		}
		if i > 0 && d.Err() == nil && e.URL <= entries[i-1].URL {
			d.Failf("entry %d: URL %.80q not after %.80q", i, e.URL, entries[i-1].URL)
		}
		entries = append(entries, e)
	}
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("%w: tdx snapshot: %w", attest.ErrMalformed, err)
	}
	return entries, nil
}

// SnapshotGetter serves go-tdx-guest the responses of a snapshot, and asks
// its fallback for any other URL.
type SnapshotGetter struct {
	entries  map[string]SnapshotEntry
	fallback trust.HTTPSGetter
}

var _ trust.ContextHTTPSGetter = (*SnapshotGetter)(nil)

// NewSnapshotGetter returns a getter serving entries, and fallback (which
// may be nil) for Intel's collateral URLs not among them; other URLs are
// refused with ErrNotInSnapshot.
func NewSnapshotGetter(entries []SnapshotEntry, fallback trust.HTTPSGetter) *SnapshotGetter {
	g := &SnapshotGetter{entries: make(map[string]SnapshotEntry, len(entries)), fallback: fallback}
	for _, e := range entries {
		g.entries[e.URL] = e
	}
	return g
}

// Get returns the saved header and body for url.
func (g *SnapshotGetter) Get(url string) (map[string][]string, []byte, error) {
	return g.GetContext(context.Background(), url)
}

// GetContext is Get with a context, passed on to the fallback.
func (g *SnapshotGetter) GetContext(ctx context.Context, url string) (map[string][]string, []byte, error) {
	e, ok := g.entries[url]
	if !ok {
		// Only Intel's collateral URLs are passed on: the URLs go-tdx-guest
		// asks for come partly from certificates in the snapshot, which
		// the worker wrote.
		if g.fallback == nil || !IntelCollateralURL(url) {
			return nil, nil, fmt.Errorf("%w: %s", ErrNotInSnapshot, url)
		}
		return trust.GetWith(ctx, g.fallback, url)
	}
	header := map[string][]string{}
	if h := issuerChainHeader(url); h != "" && e.IssuerChain != "" {
		header[h] = []string{e.IssuerChain}
	}
	return header, e.Body, nil
}
