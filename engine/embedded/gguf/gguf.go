// Package gguf reads and writes GGUF, the model file format of ggml and llama.cpp.
//
// Parse decodes a whole file held in memory without copying tensor data: each
// Tensor's Data is a slice of the input. Files come from the internet, so every
// count and length is checked against the bytes that remain before anything is
// allocated, and a truncated or hostile file gives an error, never a panic.
package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the alignment of tensor data when the file does not set
// general.alignment.
const DefaultAlignment = 32

// Hard limits on what Parse accepts. They are far above what real models use
// and keep a hostile file from making Parse do unbounded work.
const (
	MaxDims       = 4       // dimensions of a tensor, as in ggml
	MaxArrayDepth = 4       // nesting of metadata arrays
	MaxStringLen  = 1 << 26 // bytes in one metadata string or name
	MaxAlignment  = 1 << 16 // general.alignment
	maxElements   = 1 << 60 // elements in one tensor
)

// ErrKeyNotFound is returned by the metadata getters for an absent key.
var ErrKeyNotFound = errors.New("gguf: key not found")

// ErrFormat is wrapped by every error Parse returns for a malformed file.
var ErrFormat = errors.New("gguf: malformed file")

// File is a parsed GGUF file.
type File struct {
	Version    uint32
	Alignment  int      // of tensor data, in bytes
	KV         []KV     // metadata in file order
	Tensors    []Tensor // tensor descriptions in file order
	DataOffset int      // where tensor data starts in the file

	kvIndex     map[string]int
	tensorIndex map[string]int
}

// KV is one metadata entry. Value holds a Go value of the matching type:
// uint8, int8, uint16, int16, uint32, int32, float32, bool, string, uint64,
// int64, float64, or for arrays a slice of those ([]string, []float32, ...),
// with []any for arrays of arrays.
type KV struct {
	Key   string
	Value any
}

// Tensor is one tensor of a file.
type Tensor struct {
	Name string
	Type TensorType
	// Dims are fastest-varying first: a matrix with Dims [in, out] is out
	// rows of in contiguous elements.
	Dims   []uint64
	Offset uint64 // from File.DataOffset
	Data   []byte // the encoded elements, a slice of the parsed input
}

// Elements is the number of elements in t.
func (t *Tensor) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// decoder reads little-endian values from a byte slice and remembers the
// first error; after it every read returns zero values.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at offset %d: %s", ErrFormat, d.off, fmt.Sprintf(format, args...))
	}
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) take(n int, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > d.remaining() {
		d.fail("%s needs %d bytes, %d remain (truncated file?)", what, n, d.remaining())
		return nil
	}
	p := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return p
}

func (d *decoder) u8(what string) uint8 {
	if p := d.take(1, what); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) u16(what string) uint16 {
	if p := d.take(2, what); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) u32(what string) uint32 {
	if p := d.take(4, what); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (d *decoder) u64(what string) uint64 {
	if p := d.take(8, what); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

// count reads a uint64 element count and checks that count elements of at
// least minSize bytes each can still follow.
func (d *decoder) count(minSize int, what string) int {
	n := d.u64(what)
	if d.err != nil {
		return 0
	}
	if n > uint64(d.remaining()/minSize) {
		d.fail("%s of %d does not fit in the %d remaining bytes", what, n, d.remaining())
		return 0
	}
	return int(n)
}

func (d *decoder) str(what string) string {
	n := d.u64(what + " length")
	if d.err != nil {
		return ""
	}
	if n > MaxStringLen {
		d.fail("%s length %d exceeds the limit of %d", what, n, MaxStringLen)
		return ""
	}
	return string(d.take(int(n), what))
}

// Parse decodes a GGUF file of version 2 or 3. Tensor data is not copied.
func Parse(data []byte) (*File, error) {
	d := &decoder{b: data}
	if m := d.take(4, "magic"); d.err != nil || string(m) != Magic {
		if d.err != nil {
			return nil, d.err
		}
		return nil, fmt.Errorf("%w: magic %q is not %q", ErrFormat, m, Magic)
	}
	f := &File{Version: d.u32("version"), Alignment: DefaultAlignment}
	switch {
	case d.err != nil:
		return nil, d.err
	case f.Version == 1:
		return nil, fmt.Errorf("%w: GGUF version 1 is obsolete; convert the model again", ErrFormat)
	case f.Version != 2 && f.Version != 3:
		if bits.ReverseBytes32(f.Version) <= 3 {
			return nil, fmt.Errorf("%w: big-endian GGUF is not supported", ErrFormat)
		}
		return nil, fmt.Errorf("%w: unsupported GGUF version %d", ErrFormat, f.Version)
	}
	// A tensor info takes at least 8+4+4+8 bytes, a key-value pair 8+4+1.
	nTensors := d.count(24, "tensor count")
	nKV := d.count(13, "metadata count")
	if d.err != nil {
		return nil, d.err
	}

	f.KV = make([]KV, 0, nKV)
	f.kvIndex = make(map[string]int, nKV)
	for range nKV {
		key := d.str("metadata key")
		typ := ValueType(d.u32("type of " + key))
		v := d.value(typ, key, 0)
		if d.err != nil {
			return nil, d.err
		}
		if _, dup := f.kvIndex[key]; dup {
			return nil, fmt.Errorf("%w: duplicate metadata key %q", ErrFormat, key)
		}
		f.kvIndex[key] = len(f.KV)
		f.KV = append(f.KV, KV{key, v})
	}
	if v, ok := f.Lookup("general.alignment"); ok {
		a, ok := v.(uint32)
		if !ok || a == 0 || a&(a-1) != 0 || a > MaxAlignment {
			return nil, fmt.Errorf("%w: general.alignment %v is not a power of two uint32 up to %d", ErrFormat, v, MaxAlignment)
		}
		f.Alignment = int(a)
	}

	f.Tensors = make([]Tensor, nTensors)
	f.tensorIndex = make(map[string]int, nTensors)
	for i := range f.Tensors {
		t := &f.Tensors[i]
		t.Name = d.str("tensor name")
		nDims := d.u32("dimension count of " + t.Name)
		if d.err == nil && (nDims == 0 || nDims > MaxDims) {
			return nil, fmt.Errorf("%w: tensor %q has %d dimensions, want 1 to %d", ErrFormat, t.Name, nDims, MaxDims)
		}
		t.Dims = make([]uint64, nDims)
		for j := range t.Dims {
			t.Dims[j] = d.u64("dimension of " + t.Name)
		}
		t.Type = TensorType(d.u32("type of " + t.Name))
		t.Offset = d.u64("offset of " + t.Name)
		if d.err != nil {
			return nil, d.err
		}
		if _, dup := f.tensorIndex[t.Name]; dup {
			return nil, fmt.Errorf("%w: duplicate tensor %q", ErrFormat, t.Name)
		}
		f.tensorIndex[t.Name] = i
	}

	f.DataOffset = alignUp(d.off, f.Alignment)
	if f.DataOffset > len(data) && nTensors > 0 {
		return nil, fmt.Errorf("%w: tensor data at %d is past the end of the %d-byte file", ErrFormat, f.DataOffset, len(data))
	}
	for i := range f.Tensors {
		if err := f.locate(&f.Tensors[i], data); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// locate checks t's shape, type and offset and points t.Data at its bytes.
func (f *File) locate(t *Tensor, data []byte) error {
	l, ok := layouts[t.Type]
	if !ok {
		return fmt.Errorf("%w: tensor %q has unknown type %d", ErrFormat, t.Name, uint32(t.Type))
	}
	n := uint64(1)
	for _, dim := range t.Dims {
		hi, lo := bits.Mul64(n, dim)
		if hi != 0 || lo > maxElements {
			return fmt.Errorf("%w: tensor %q has too many elements %v", ErrFormat, t.Name, t.Dims)
		}
		n = lo
	}
	if t.Dims[0]%l.block != 0 {
		return fmt.Errorf("%w: tensor %q of type %s has rows of %d elements, not a multiple of the block size %d", ErrFormat, t.Name, t.Type, t.Dims[0], l.block)
	}
	size := n / l.block * l.nbytes // no overflow: n <= 2^60 and nbytes/block <= 8
	if t.Offset%uint64(f.Alignment) != 0 {
		return fmt.Errorf("%w: tensor %q at offset %d is not aligned to %d", ErrFormat, t.Name, t.Offset, f.Alignment)
	}
	avail := uint64(len(data) - min(f.DataOffset, len(data)))
	if t.Offset > avail || size > avail-t.Offset {
		return fmt.Errorf("%w: tensor %q (%d bytes at %d) runs past the end of the data (%d bytes; truncated file?)", ErrFormat, t.Name, size, t.Offset, avail)
	}
	start := uint64(f.DataOffset) + t.Offset
	t.Data = data[start : start+size : start+size]
	return nil
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// value decodes one metadata value of type typ for key.
func (d *decoder) value(typ ValueType, key string, depth int) any {
	switch typ {
	case TypeUint8:
		return d.u8(key)
	case TypeInt8:
		return int8(d.u8(key))
	case TypeUint16:
		return d.u16(key)
	case TypeInt16:
		return int16(d.u16(key))
	case TypeUint32:
		return d.u32(key)
	case TypeInt32:
		return int32(d.u32(key))
	case TypeFloat32:
		return math.Float32frombits(d.u32(key))
	case TypeBool:
		b := d.u8(key)
		if b > 1 {
			d.fail("bool %s is %d, not 0 or 1", key, b)
		}
		return b == 1
	case TypeString:
		return d.str(key)
	case TypeUint64:
		return d.u64(key)
	case TypeInt64:
		return int64(d.u64(key))
	case TypeFloat64:
		return math.Float64frombits(d.u64(key))
	case TypeArray:
		if depth >= MaxArrayDepth {
			d.fail("array %s nests deeper than %d", key, MaxArrayDepth)
			return nil
		}
		return d.array(key, depth+1)
	}
	d.fail("%s has unknown value type %d", key, uint32(typ))
	return nil
}

func (d *decoder) array(key string, depth int) any {
	typ := ValueType(d.u32("element type of " + key))
	minSize := typ.size()
	switch typ {
	case TypeString:
		minSize = 8
	case TypeArray:
		minSize = 12
	}
	if d.err == nil && minSize == 0 {
		d.fail("array %s has unknown element type %d", key, uint32(typ))
	}
	n := d.count(max(minSize, 1), "length of array "+key)
	if d.err != nil {
		return nil
	}
	switch typ {
	case TypeUint8:
		return fixed(d, n, key, func(p []byte) uint8 { return p[0] })
	case TypeInt8:
		return fixed(d, n, key, func(p []byte) int8 { return int8(p[0]) })
	case TypeBool:
		return fixed(d, n, key, func(p []byte) bool { return p[0] != 0 })
	case TypeUint16:
		return fixed(d, n, key, binary.LittleEndian.Uint16)
	case TypeInt16:
		return fixed(d, n, key, func(p []byte) int16 { return int16(binary.LittleEndian.Uint16(p)) })
	case TypeUint32:
		return fixed(d, n, key, binary.LittleEndian.Uint32)
	case TypeInt32:
		return fixed(d, n, key, func(p []byte) int32 { return int32(binary.LittleEndian.Uint32(p)) })
	case TypeFloat32:
		return fixed(d, n, key, func(p []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(p)) })
	case TypeUint64:
		return fixed(d, n, key, binary.LittleEndian.Uint64)
	case TypeInt64:
		return fixed(d, n, key, func(p []byte) int64 { return int64(binary.LittleEndian.Uint64(p)) })
	case TypeFloat64:
		return fixed(d, n, key, func(p []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(p)) })
	case TypeString:
		out := make([]string, n)
		for i := range out {
			out[i] = d.str(key)
		}
		return out
	default: // TypeArray
		out := make([]any, n)
		for i := range out {
			out[i] = d.value(TypeArray, key, depth)
		}
		return out
	}
}

// fixed decodes n fixed-size elements; count has already checked they fit.
func fixed[T any](d *decoder, n int, key string, conv func([]byte) T) []T {
	var zero T
	size := binary.Size(zero)
	p := d.take(n*size, key)
	if d.err != nil {
		return nil
	}
	out := make([]T, n)
	for i := range out {
		out[i] = conv(p[i*size:])
	}
	return out
}

// Lookup returns the value of a metadata key.
func (f *File) Lookup(key string) (any, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return nil, false
	}
	return f.KV[i].Value, true
}

// Tensor returns the tensor with the given name.
func (f *File) Tensor(name string) (*Tensor, bool) {
	i, ok := f.tensorIndex[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

func (f *File) get(key string) (any, error) {
	v, ok := f.Lookup(key)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrKeyNotFound, key)
	}
	return v, nil
}

func typeError(key string, v any, want string) error {
	return fmt.Errorf("gguf: %s is %T, want %s", key, v, want)
}

// String returns a string value.
func (f *File) String(key string) (string, error) {
	v, err := f.get(key)
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", typeError(key, v, "string")
	}
	return s, nil
}

// Bool returns a bool value.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.get(key)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, typeError(key, v, "bool")
	}
	return b, nil
}

// Int returns an integer value of any integer type.
func (f *File) Int(key string) (int64, error) {
	v, err := f.get(key)
	if err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case uint8:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("gguf: %s = %d overflows int64", key, x)
		}
		return int64(x), nil
	}
	return 0, typeError(key, v, "an integer")
}

// Float returns a float32 or float64 value.
func (f *File) Float(key string) (float64, error) {
	v, err := f.get(key)
	if err != nil {
		return 0, err
	}
	switch x := v.(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	}
	return 0, typeError(key, v, "a float")
}

// Strings returns an array of strings.
func (f *File) Strings(key string) ([]string, error) { return getSlice[string](f, key) }

// Float32s returns an array of float32.
func (f *File) Float32s(key string) ([]float32, error) { return getSlice[float32](f, key) }

// Int32s returns an array of int32.
func (f *File) Int32s(key string) ([]int32, error) { return getSlice[int32](f, key) }

func getSlice[T any](f *File, key string) ([]T, error) {
	v, err := f.get(key)
	if err != nil {
		return nil, err
	}
	s, ok := v.([]T)
	if !ok {
		return nil, typeError(key, v, fmt.Sprintf("%T", s))
	}
	return s, nil
}
