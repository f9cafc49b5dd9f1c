package seal

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Every encoding in this package is big-endian with a u32 length before each
// variable-length field, so that any value, valid or not, has exactly one
// encoding and no two values share one. Parsing is strict: a length over its
// limit, a flag that is not 0 or 1, or a byte left over is an error.

func appendU16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendU32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }
func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// appendVar appends a u32 length and then v. Lengths of 4 GiB and more cannot
// occur: every caller has already bounded v far below that.
func appendVar(b, v []byte) []byte {
	return append(appendU32(b, uint32(len(v))), v...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// decoder reads an encoding front to back. The first failure sticks, so a
// parse function reads every field and checks d.err once at the end.
type decoder struct {
	b    []byte
	what string // the thing being parsed, for error messages
	err  error
}

func (d *decoder) fail(err error, format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("seal: %s: %w: %s", d.what, err, fmt.Sprintf(format, args...))
	}
}

// take returns the next n bytes; they alias the input.
func (d *decoder) take(n int, field string) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.fail(ErrMalformed, "%s: need %d bytes, have %d", field, n, len(d.b))
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8(field string) uint8 {
	if v := d.take(1, field); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u16(field string) uint16 {
	if v := d.take(2, field); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (d *decoder) u32(field string) uint32 {
	if v := d.take(4, field); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) u64(field string) uint64 {
	if v := d.take(8, field); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (d *decoder) bool(field string) bool {
	switch v := d.u8(field); v {
	case 0:
		return false
	case 1:
		return true
	default:
		d.fail(ErrMalformed, "%s: flag is %d, want 0 or 1", field, v)
		return false
	}
}

// fixed copies the next len(dst) bytes into dst.
func (d *decoder) fixed(dst []byte, field string) {
	copy(dst, d.take(len(dst), field))
}

// bytes reads a u32 length and that many bytes, refusing lengths outside
// [lo, hi]. A length over hi wraps ErrTooLarge.
func (d *decoder) bytes(field string, lo, hi int) []byte {
	n := d.u32(field)
	if d.err != nil {
		return nil
	}
	if uint64(n) > uint64(hi) {
		d.fail(ErrTooLarge, "%s: %d bytes, limit %d", field, n, hi)
		return nil
	}
	if int(n) < lo {
		d.fail(ErrMalformed, "%s: %d bytes, want at least %d", field, n, lo)
		return nil
	}
	return d.take(int(n), field)
}

// magic checks a 4-byte magic and a version byte.
func (d *decoder) magic(magic string, version byte) {
	if m := d.take(len(magic), "magic"); m != nil && string(m) != magic {
		d.fail(ErrMalformed, "magic %q, want %q", m, magic)
	}
	if v := d.u8("version"); d.err == nil && v != version {
		d.fail(ErrVersion, "version %d, want %d", v, version)
	}
}

// finish reports the first failure, or bytes left over.
func (d *decoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(ErrMalformed, "%d trailing bytes", len(d.b))
	}
	return d.err
}

// signedMessage is what an Ed25519 signature in this package signs: a domain
// tag and the SHA-256 of the signed bytes. Signing a digest rather than the
// bytes themselves keeps an 8 MiB envelope from being copied to prepend the
// tag, and any plain Ed25519 implementation can produce it.
func signedMessage(tag string, parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum([]byte(tag))
}
