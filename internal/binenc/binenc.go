// Package binenc reads and writes strict binary encodings: big-endian
// integers, fixed-size fields and byte strings behind a uint32 length, with
// exactly one encoding per value.
//
// Writers append to a byte slice with the Append functions. A [Decoder]
// reads the same fields back and refuses anything else: a length outside its
// field's limits, a flag other than 0 or 1, a wrong magic or version, bytes
// left over. Its first failure sticks, so a parser reads every field and
// checks [Decoder.Finish] once at the end.
//
// Copying is explicit: [Decoder.Fixed] and [Decoder.Bytes] copy, the
// NoCopy methods return slices of the input.
package binenc

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors a [Decoder] wraps; every decoding error wraps exactly one of them.
var (
	ErrTruncated = errors.New("truncated")           // the input ends inside a field
	ErrTooLarge  = errors.New("too large")           // a length over its field's limit
	ErrVersion   = errors.New("unsupported version") // the right magic with another version
	ErrMalformed = errors.New("malformed")           // anything else: magic, flag, short length, trailing bytes, Failf
)

// AppendU16 appends v big-endian.
func AppendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }

// AppendU32 appends v big-endian.
func AppendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

// AppendU64 appends v big-endian.
func AppendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// AppendBool appends v as one byte, 0 or 1.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// AppendBytes appends the uint32 length of p and then p. Callers bound p far
// below 4 GiB, so the length cannot wrap.
func AppendBytes(b, p []byte) []byte { return append(AppendU32(b, uint32(len(p))), p...) }

// AppendMagic appends a format tag and a version byte, as [Decoder.Magic] reads them.
func AppendMagic(b []byte, tag string, version uint8) []byte {
	return append(append(b, tag...), version)
}

// decodeError is a decoding failure: its text names the field, and it
// unwraps to one of the package's sentinels, which callers map to their own.
type decodeError struct {
	kind error
	msg  string
}

func (e *decodeError) Error() string { return e.msg }
func (e *decodeError) Unwrap() error { return e.kind }

// Decoder reads an encoding front to back. Field names given to its methods
// appear in its errors. After the first failure every method returns zero
// values.
type Decoder struct {
	b   []byte
	err error
}

// NewDecoder returns a decoder of b. Slices returned by the NoCopy methods
// alias b.
func NewDecoder(b []byte) *Decoder { return &Decoder{b: b} }

func (d *Decoder) fail(kind error, format string, args ...any) {
	if d.err == nil {
		d.err = &decodeError{kind: kind, msg: fmt.Sprintf(format, args...)}
	}
}

// Failf records a failure found by the caller (a value out of range, say),
// wrapping [ErrMalformed], unless a failure is already recorded.
func (d *Decoder) Failf(format string, args ...any) { d.fail(ErrMalformed, format, args...) }

// Err returns the first failure so far, so a loop over a counted list can
// stop at it.
func (d *Decoder) Err() error { return d.err }

// Finish returns the first failure, or an error wrapping [ErrMalformed] if
// bytes are left over.
func (d *Decoder) Finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(ErrMalformed, "%d trailing bytes", len(d.b))
	}
	return d.err
}

// FixedNoCopy returns the next n bytes, aliasing the input, or nil after a failure.
func (d *Decoder) FixedNoCopy(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail(ErrTruncated, "%s: truncated, need %d bytes, have %d", field, n, len(d.b))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// Fixed copies the next len(dst) bytes into dst.
func (d *Decoder) Fixed(field string, dst []byte) { copy(dst, d.FixedNoCopy(field, len(dst))) }

var zeros [8]byte

// word returns the n ≤ 8 bytes of an integer, or zeros after a failure.
func (d *Decoder) word(field string, n int) []byte {
	if p := d.FixedNoCopy(field, n); p != nil {
		return p
	}
	return zeros[:n]
}

// U8 reads one byte.
func (d *Decoder) U8(field string) uint8 { return d.word(field, 1)[0] }

// U16 reads a big-endian uint16.
func (d *Decoder) U16(field string) uint16 { return binary.BigEndian.Uint16(d.word(field, 2)) }

// U32 reads a big-endian uint32.
func (d *Decoder) U32(field string) uint32 { return binary.BigEndian.Uint32(d.word(field, 4)) }

// U64 reads a big-endian uint64.
func (d *Decoder) U64(field string) uint64 { return binary.BigEndian.Uint64(d.word(field, 8)) }

// Bool reads a byte that must be 0 or 1.
func (d *Decoder) Bool(field string) bool {
	v := d.U8(field)
	if v > 1 {
		d.fail(ErrMalformed, "%s: flag is %d, want 0 or 1", field, v)
	}
	return v == 1
}

// BytesNoCopy reads a uint32 length and that many bytes, aliasing the input.
// A length over max wraps [ErrTooLarge], one under min [ErrMalformed].
func (d *Decoder) BytesNoCopy(field string, min, max int) []byte {
	n := d.U32(field)
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(max) {
		d.fail(ErrTooLarge, "%s: %d bytes, limit %d", field, n, max)
		return nil
	}
	if int(n) < min {
		d.fail(ErrMalformed, "%s: %d bytes, want at least %d", field, n, min)
		return nil
	}
	return d.FixedNoCopy(field, int(n))
}

// Bytes is [Decoder.BytesNoCopy] returning a copy, or nil if the string is
// empty, so the value does not keep the input alive.
func (d *Decoder) Bytes(field string, min, max int) []byte {
	p := d.BytesNoCopy(field, min, max)
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

// Magic reads a format tag and a version byte, as [AppendMagic] writes them.
// A wrong tag wraps [ErrMalformed], a wrong version [ErrVersion].
func (d *Decoder) Magic(tag string, version uint8) {
	if p := d.FixedNoCopy("magic", len(tag)); p != nil && string(p) != tag {
		d.fail(ErrMalformed, "magic %q, want %q", p, tag)
	}
	if v := d.U8("version"); d.err == nil && v != version {
		d.fail(ErrVersion, "version %d, want %d", v, version)
	}
}
