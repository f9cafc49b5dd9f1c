package attest

import (
	"encoding/binary"
	"fmt"
)

// The wire forms in this package are fixed sequences of big-endian integers,
// fixed-size arrays and byte strings prefixed with a uint32 length. There is
// exactly one encoding of each value, and decoders refuse anything else:
// lengths beyond per-field limits, unknown versions, trailing bytes.

type writer struct{ b []byte }

func (w *writer) raw(p []byte)   { w.b = append(w.b, p...) }
func (w *writer) u8(v uint8)     { w.b = append(w.b, v) }
func (w *writer) u16(v uint16)   { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32)   { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *writer) u64(v uint64)   { w.b = binary.BigEndian.AppendUint64(w.b, v) }
func (w *writer) bytes(p []byte) { w.u32(uint32(len(p))); w.raw(p) }

// reader decodes a wire form; the first failure sticks, so a decoder reads
// every field and checks r.err once.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *reader) raw(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.fail("%s: truncated (need %d bytes, have %d)", field, n, len(r.b))
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) u8(field string) uint8 {
	if p := r.raw(1, field); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if p := r.raw(2, field); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if p := r.raw(4, field); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64(field string) uint64 {
	if p := r.raw(8, field); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// bytes reads a length-prefixed byte string of min to max bytes and returns a
// copy, so parsed values do not alias the caller's buffer.
func (r *reader) bytes(min, max int, field string) []byte {
	n := r.u32(field + " length")
	if r.err != nil {
		return nil
	}
	if uint64(n) < uint64(min) || uint64(n) > uint64(max) {
		r.fail("%s: length %d outside [%d, %d]", field, n, min, max)
		return nil
	}
	p := r.raw(int(n), field)
	if p == nil {
		return nil
	}
	return append([]byte{}, p...)
}

// magic reads and checks a format tag and version byte.
func (r *reader) magic(tag string, version uint8, what string) {
	p := r.raw(len(tag)+1, what+" header")
	if r.err != nil {
		return
	}
	if string(p[:len(tag)]) != tag {
		r.fail("not a %s (bad magic %q)", what, p[:len(tag)])
		return
	}
	if p[len(tag)] != version {
		r.fail("%s version %d not supported (want %d)", what, p[len(tag)], version)
	}
}

// end returns the sticky error, or an error if bytes are left over.
func (r *reader) end() error {
	if r.err == nil && len(r.b) > 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}
