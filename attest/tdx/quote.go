// Package tdx verifies Intel TDX quotes offline or online: signature, PCK chain to Intel's root, Intel PCS collateral, and a policy.
//
// Checking a quote follows the steps of package attest, one function each, with
// the heavy lifting done by github.com/google/go-tdx-guest:
//
//  1. parse: Parse (attest.ErrMalformed);
//  2. signature: VerifySignature checks the quote's signature by its attestation
//     key, the QE report vouching for that key, and the PCK certificate chain to
//     Intel's root (attest.ErrSignature, attest.ErrChain);
//  3. collateral: VerifyCollateral fetches Intel's TCB info, QE identity, PCK
//     CRL and root CA CRL through a pluggable getter (such as a Dir of saved
//     PCS responses), checks their signatures, validity at the given time and
//     revocation, and returns the platform's TCB status (ErrCollateral);
//  4. policy: Policy.Check (TCB status, debug, report_data, image hash).
//
// Verifier runs steps 1 to 3 plus the TCB status check as an attest.Verifier of
// kind "tdx", so it slots into attest.Checker, which then applies its own
// report_data binding and attest.Policy.
//
// # Collateral
//
// The getter of step 3 is one of:
//
//   - Dir: saved PCS responses in a directory, for tests and air-gapped use;
//   - PCS: Intel PCS or a PCCS, through a disk cache (package
//     attest/collateral with CacheOptions) that keeps each response until
//     its nextUpdate and serves it stale, rather than fail, when the
//     service cannot be reached;
//   - SnapshotGetter: the responses a worker recorded with Snapshot and
//     shipped in attest.Evidence.Collateral. Verifier.VerifyEvidence uses it
//     first, so that clients without access to Intel verify offline.
//
// Whatever the getter, the collateral is signed by Intel and checked at the
// verifier's own clock, so a getter can make a quote fail but not pass.
//
// # Image hash
//
// The measurement a network allow-lists is the image hash (see ImageHash):
//
//	SHA-256(MRTD ‖ MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ RTMR3)
//
// each field the 48 raw bytes of the quote's TD report body, in that order,
// 384 bytes in all, as Telegram's COCOON computes it. MRTD measures the initial
// TD memory (the virtual firmware), RTMR0 the firmware configuration, RTMR1
// the kernel and its boot path, RTMR2 the kernel command line and initrd, and
// RTMR3 whatever the guest extends at run time; MRCONFIGID, MROWNER and
// MROWNERCONFIG are set by the host when it creates the TD (all zero if unused).
package tdx

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"

	"github.com/cocoon-go/cocoon/attest"
)

// MaxQuoteSize bounds the quotes Parse accepts. A quote with its PCK chain is
// about 5 KiB.
const MaxQuoteSize = 64 << 10

// debugAttribute is bit 0 of TDATTRIBUTES (TUD.DEBUG): the TD runs in debug
// mode and the host can read and write its memory.
const debugAttribute = 1 << 0

// migratableAttribute is bit 29 of TDATTRIBUTES (MIGRATABLE): the TD may be
// migrated, its memory exported by a migration TD the host chooses.
const migratableAttribute = 1 << 29

// Quote is a parsed TDX quote, version 4 or 5. It has not been verified.
type Quote struct {
	Version       uint32
	MRTD          [48]byte
	MRConfigID    [48]byte
	MROwner       [48]byte
	MROwnerConfig [48]byte
	RTMR          [4][48]byte
	ReportData    [64]byte
	TDAttributes  uint64 // little-endian TDATTRIBUTES; bit 0 is debug

	proto any // *pb.QuoteV4 or *pb.QuoteV5, as go-tdx-guest's verify wants it
}

// Debug reports whether the TD runs in debug mode (TDATTRIBUTES.DEBUG).
func (q *Quote) Debug() bool { return q.TDAttributes&debugAttribute != 0 }

// Migratable reports whether the TD may be migrated (TDATTRIBUTES.MIGRATABLE).
func (q *Quote) Migratable() bool { return q.TDAttributes&migratableAttribute != 0 }

// tdBody is what TD quote bodies of every version have in common.
type tdBody interface {
	GetMrTd() []byte
	GetMrConfigId() []byte
	GetMrOwner() []byte
	GetMrOwnerConfig() []byte
	GetRtmrs() [][]byte
	GetReportData() []byte
	GetTdAttributes() []byte
}

// quoteToProto is abi.QuoteToProto, which panics on some malformed quotes
// (a QE authentication data size beyond the input slices out of range, as
// FuzzParse found): a quote from the network must not crash its verifier,
// so a panic becomes an error.
func quoteToProto(raw []byte) (p any, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("go-tdx-guest abi panicked: %v", r)
		}
	}()
	return abi.QuoteToProto(raw)
}

// Parse decodes a raw TDX quote (version 4 or 5) with go-tdx-guest's abi
// package. Failures wrap attest.ErrMalformed.
func Parse(raw []byte) (*Quote, error) {
	if len(raw) > MaxQuoteSize {
		return nil, fmt.Errorf("%w: tdx quote of %d bytes, more than %d", attest.ErrMalformed, len(raw), MaxQuoteSize)
	}
	p, err := quoteToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: tdx quote: %w", attest.ErrMalformed, err)
	}
	if err := abi.CheckQuote(p); err != nil {
		return nil, fmt.Errorf("%w: tdx quote: %w", attest.ErrMalformed, err)
	}
	q := &Quote{proto: p}
	var body tdBody
	switch p := p.(type) {
	case *pb.QuoteV4:
		q.Version, body = p.GetHeader().GetVersion(), p.GetTdQuoteBody()
	case *pb.QuoteV5:
		q.Version, body = p.GetHeader().GetVersion(), p.GetTdQuoteBodyDescriptor().GetTdQuoteBodyV5()
	default:
		return nil, fmt.Errorf("%w: tdx quote of unsupported type %T", attest.ErrMalformed, p)
	}
	if body == nil || len(body.GetRtmrs()) != len(q.RTMR) || len(body.GetTdAttributes()) != 8 {
		return nil, fmt.Errorf("%w: tdx quote version %d: incomplete TD report body", attest.ErrMalformed, q.Version)
	}
	fields := []struct {
		dst []byte
		src []byte
	}{
		{q.MRTD[:], body.GetMrTd()},
		{q.MRConfigID[:], body.GetMrConfigId()},
		{q.MROwner[:], body.GetMrOwner()},
		{q.MROwnerConfig[:], body.GetMrOwnerConfig()},
		{q.RTMR[0][:], body.GetRtmrs()[0]},
		{q.RTMR[1][:], body.GetRtmrs()[1]},
		{q.RTMR[2][:], body.GetRtmrs()[2]},
		{q.RTMR[3][:], body.GetRtmrs()[3]},
		{q.ReportData[:], body.GetReportData()},
	}
	for _, f := range fields {
		if len(f.src) != len(f.dst) {
			return nil, fmt.Errorf("%w: tdx quote: field of %d bytes, want %d", attest.ErrMalformed, len(f.src), len(f.dst))
		}
		copy(f.dst, f.src)
	}
	q.TDAttributes = binary.LittleEndian.Uint64(body.GetTdAttributes())
	return q, nil
}

// ImageHash returns the image hash of q, the measurement allow-lists name:
// SHA-256 over MRTD ‖ MRCONFIGID ‖ MROWNER ‖ MROWNERCONFIG ‖ RTMR0 ‖ RTMR1 ‖
// RTMR2 ‖ RTMR3, each 48 bytes (see the package documentation).
func ImageHash(q *Quote) [32]byte {
	h := sha256.New()
	for _, f := range [][48]byte{q.MRTD, q.MRConfigID, q.MROwner, q.MROwnerConfig, q.RTMR[0], q.RTMR[1], q.RTMR[2], q.RTMR[3]} {
		h.Write(f[:])
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum
}

// Claims returns what q claims once verified, with the TCB status and expiry
// learned from its collateral: the image hash as Measurement, report_data,
// the debug attribute. TDX quotes carry no issue time, so Issued is zero.
func (q *Quote) Claims(c *Collateral) *attest.Claims {
	return &attest.Claims{
		Kind:        attest.KindTDX,
		Measurement: ImageHash(q),
		ReportData:  q.ReportData,
		Debug:       q.Debug(),
		TCB:         c.TCBStatus,
		ValidUntil:  c.ValidUntil,
	}
}
