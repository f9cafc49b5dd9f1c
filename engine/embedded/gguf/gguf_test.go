package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// sample builds a small file with every metadata type and a few tensors.
func sample(t testing.TB) ([]byte, []KV) {
	t.Helper()
	kvs := []KV{
		{"u8", uint8(200)}, {"i8", int8(-100)}, {"u16", uint16(60000)}, {"i16", int16(-30000)},
		{"u32", uint32(4000000000)}, {"i32", int32(-2000000000)}, {"f32", float32(1.5)},
		{"bool", true}, {"str", "héllo"}, {"u64", uint64(1 << 63)}, {"i64", int64(-1 << 62)},
		{"f64", 2.25}, {"general.alignment", uint32(64)},
		{"a.u8", []uint8{1, 2}}, {"a.i8", []int8{-1}}, {"a.u16", []uint16{7}}, {"a.i16", []int16{-7}},
		{"a.u32", []uint32{9, 10}}, {"a.i32", []int32{-9}}, {"a.f32", []float32{0.5, -0.25}},
		{"a.bool", []bool{true, false}}, {"a.str", []string{"a", "", "ccc"}}, {"a.u64", []uint64{1}},
		{"a.i64", []int64{-1}}, {"a.f64", []float64{3.5}}, {"a.empty", []string{}},
		{"a.nested", []any{[]int32{1, 2}, []string{"x"}}},
	}
	var w Writer
	for _, kv := range kvs {
		w.AddKV(kv.Key, kv.Value)
	}
	w.AddTensor("f32", F32, []uint64{3, 2}, EncodeF32([]float32{1, 2, 3, 4, 5, 6}))
	w.AddTensor("f16", F16, []uint64{5}, EncodeF16([]float32{1, -2, 0.5, 0, 65504}))
	w.AddTensor("q8", Q8_0, []uint64{32, 2}, QuantizeQ8_0(make([]float32, 64)))
	b, err := w.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b, kvs
}

func TestRoundTrip(t *testing.T) {
	b, kvs := sample(t)
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.Alignment != 64 || f.DataOffset%64 != 0 {
		t.Errorf("version %d alignment %d data offset %d", f.Version, f.Alignment, f.DataOffset)
	}
	if !reflect.DeepEqual(f.KV, kvs) {
		t.Errorf("metadata:\n got %#v\nwant %#v", f.KV, kvs)
	}
	if len(f.Tensors) != 3 {
		t.Fatalf("%d tensors", len(f.Tensors))
	}
	tf, ok := f.Tensor("f32")
	if !ok || tf.Type != F32 || !reflect.DeepEqual(tf.Dims, []uint64{3, 2}) || tf.Elements() != 6 {
		t.Fatalf("tensor f32: %+v", tf)
	}
	got := make([]float32, 6)
	if err := Dequantize(got, tf.Type, tf.Data); err != nil || !reflect.DeepEqual(got, []float32{1, 2, 3, 4, 5, 6}) {
		t.Errorf("f32 data %v, %v", got, err)
	}
	th, _ := f.Tensor("f16")
	got = make([]float32, 5)
	if err := Dequantize(got, th.Type, th.Data); err != nil || !reflect.DeepEqual(got, []float32{1, -2, 0.5, 0, 65504}) {
		t.Errorf("f16 data %v, %v", got, err)
	}
	for _, tn := range f.Tensors {
		if tn.Offset%64 != 0 {
			t.Errorf("tensor %s at unaligned offset %d", tn.Name, tn.Offset)
		}
	}
	if _, ok := f.Tensor("nope"); ok {
		t.Error("found a tensor that does not exist")
	}
}

func TestGetters(t *testing.T) {
	b, _ := sample(t)
	f, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := f.String("str"); s != "héllo" || err != nil {
		t.Errorf("String = %q, %v", s, err)
	}
	for key, want := range map[string]int64{"u8": 200, "i8": -100, "u16": 60000, "i16": -30000, "u32": 4000000000, "i32": -2000000000, "i64": -1 << 62} {
		if n, err := f.Int(key); n != want || err != nil {
			t.Errorf("Int(%s) = %d, %v", key, n, err)
		}
	}
	if _, err := f.Int("u64"); err == nil {
		t.Error("Int of 2^63 did not fail")
	}
	if x, err := f.Float("f32"); x != 1.5 || err != nil {
		t.Errorf("Float(f32) = %v, %v", x, err)
	}
	if x, err := f.Float("f64"); x != 2.25 || err != nil {
		t.Errorf("Float(f64) = %v, %v", x, err)
	}
	if v, err := f.Bool("bool"); !v || err != nil {
		t.Errorf("Bool = %v, %v", v, err)
	}
	if s, err := f.Strings("a.str"); !reflect.DeepEqual(s, []string{"a", "", "ccc"}) || err != nil {
		t.Errorf("Strings = %q, %v", s, err)
	}
	if s, err := f.Float32s("a.f32"); !reflect.DeepEqual(s, []float32{0.5, -0.25}) || err != nil {
		t.Errorf("Float32s = %v, %v", s, err)
	}
	if s, err := f.Int32s("a.i32"); !reflect.DeepEqual(s, []int32{-9}) || err != nil {
		t.Errorf("Int32s = %v, %v", s, err)
	}
	if _, err := f.String("missing"); !errors.Is(err, ErrKeyNotFound) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("String(missing) error = %v", err)
	}
	if _, err := f.String("u8"); err == nil || !strings.Contains(err.Error(), "u8") {
		t.Errorf("String(u8) error = %v", err)
	}
	if _, err := f.Strings("a.f32"); err == nil {
		t.Error("Strings of a float array did not fail")
	}
}

// TestTruncated parses every prefix of a valid file: each must fail cleanly.
func TestTruncated(t *testing.T) {
	b, _ := sample(t)
	for n := range len(b) {
		f, err := Parse(b[:n])
		if err == nil {
			t.Fatalf("prefix of %d bytes parsed: %d tensors", n, len(f.Tensors))
		}
		if !errors.Is(err, ErrFormat) {
			t.Fatalf("prefix of %d bytes: error %v does not wrap ErrFormat", n, err)
		}
	}
}

// TestCorrupt flips every byte of the header region: no panics, and any file
// that still parses has tensors inside the input.
func TestCorrupt(t *testing.T) {
	b, _ := sample(t)
	f0, _ := Parse(b)
	for i := range f0.DataOffset {
		for _, x := range []byte{0xff, 0x80, 0x01} {
			c := bytes.Clone(b)
			c[i] ^= x
			if f, err := Parse(c); err == nil {
				for _, tn := range f.Tensors {
					if uint64(len(tn.Data)) > uint64(len(c)) {
						t.Fatalf("byte %d: tensor %s larger than file", i, tn.Name)
					}
				}
			}
		}
	}
}

func TestHostile(t *testing.T) {
	le := binary.LittleEndian
	header := func(version uint32, nt, nkv uint64) []byte {
		b := []byte(Magic)
		b = le.AppendUint32(b, version)
		b = le.AppendUint64(b, nt)
		return le.AppendUint64(b, nkv)
	}
	kv := func(b []byte, key string, typ ValueType, rest ...byte) []byte {
		b = le.AppendUint64(b, uint64(len(key)))
		b = append(b, key...)
		b = le.AppendUint32(b, uint32(typ))
		return append(b, rest...)
	}
	huge := le.AppendUint64(nil, 1<<62)
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"empty":        {nil, "magic"},
		"bad magic":    {[]byte("GGML\x03\x00\x00\x00"), "magic"},
		"version 1":    {header(1, 0, 0), "version 1"},
		"big endian":   {[]byte("GGUF\x00\x00\x00\x03"), "big-endian"},
		"version 9":    {header(9, 0, 0), "version 9"},
		"many tensors": {header(3, 1<<40, 0), "tensor count"},
		"many kvs":     {header(3, 0, 1<<40), "metadata count"},
		"long key":     {append(append(header(3, 0, 1), huge...), make([]byte, 16)...), "metadata key length"},
		"long string":  {kv(header(3, 0, 1), "k", TypeString, huge...), "k length"},
		"long array":   {kv(header(3, 0, 1), "k", TypeArray, append(le.AppendUint32(nil, uint32(TypeUint8)), huge...)...), "length of array k"},
		"bad type":     {kv(header(3, 0, 1), "k", 99), "unknown value type 99"},
		"bad elem":     {kv(header(3, 0, 1), "k", TypeArray, le.AppendUint32(nil, 99)...), "unknown element type 99"},
		"bad bool":     {kv(header(3, 0, 1), "k", TypeBool, 7), "bool k is 7"},
		"deep array": {kv(header(3, 0, 1), "k", TypeArray, bytes.Repeat(append(le.AppendUint32(nil, uint32(TypeArray)), le.AppendUint64(nil, 1)...), 10)...),
			"nests deeper"},
		"bad alignment": {kv(header(3, 0, 1), "general.alignment", TypeUint32, 3, 0, 0, 0), "general.alignment"},
	} {
		_, err := Parse(tc.data)
		if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, tc.want)
		}
	}
}

func TestBadTensors(t *testing.T) {
	for name, tc := range map[string]struct {
		typ  TensorType
		dims []uint64
		size int
		want string
	}{
		"unknown type":  {TensorType(77), []uint64{4}, 16, "unknown type 77"},
		"partial block": {Q8_0, []uint64{16}, 17, "not a multiple of the block size"},
		"overflow":      {F32, []uint64{1 << 32, 1 << 32, 1 << 32}, 4, "too many elements"},
		"past the end":  {F32, []uint64{1 << 20}, 4, "runs past the end"},
	} {
		var w Writer
		w.tensors = append(w.tensors, Tensor{Name: "t", Type: tc.typ, Dims: tc.dims, Data: make([]byte, tc.size)})
		b := rawWrite(&w)
		_, err := Parse(b)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
	var w Writer
	w.AddTensor("t", F32, []uint64{1}, make([]byte, 4))
	w.AddTensor("t", F32, []uint64{1}, make([]byte, 4))
	b, _ := w.Bytes()
	if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), "duplicate tensor") {
		t.Errorf("duplicate tensor: %v", err)
	}
	w = Writer{}
	w.AddKV("k", uint8(1))
	w.AddKV("k", uint8(2))
	b, _ = w.Bytes()
	if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), "duplicate metadata key") {
		t.Errorf("duplicate key: %v", err)
	}
}

// rawWrite encodes tensor infos without the size checks of WriteTo, so tests
// can describe tensors that do not match their data.
func rawWrite(w *Writer) []byte {
	le := binary.LittleEndian
	b := []byte(Magic)
	b = le.AppendUint32(b, 3)
	b = le.AppendUint64(b, uint64(len(w.tensors)))
	b = le.AppendUint64(b, 0)
	for _, t := range w.tensors {
		b = le.AppendUint64(b, uint64(len(t.Name)))
		b = append(b, t.Name...)
		b = le.AppendUint32(b, uint32(len(t.Dims)))
		for _, d := range t.Dims {
			b = le.AppendUint64(b, d)
		}
		b = le.AppendUint32(b, uint32(t.Type))
		b = le.AppendUint64(b, 0)
	}
	b = append(b, make([]byte, alignUp(len(b), DefaultAlignment)-len(b))...)
	for _, t := range w.tensors {
		b = append(b, t.Data...)
	}
	return b
}

func TestWriterRejects(t *testing.T) {
	var w Writer
	w.AddKV("k", struct{}{})
	if _, err := w.Bytes(); err == nil {
		t.Error("unsupported metadata type written")
	}
	w = Writer{}
	w.AddTensor("t", F32, []uint64{2}, make([]byte, 4))
	if _, err := w.Bytes(); err == nil {
		t.Error("short tensor data written")
	}
}

func TestF16(t *testing.T) {
	for h := range 1 << 16 {
		f := F16ToF32(uint16(h))
		if f != f {
			continue // NaN payloads need not survive
		}
		if back := F32ToF16(f); back != uint16(h) {
			t.Fatalf("half %#04x -> %v -> %#04x", h, f, back)
		}
	}
	for f, want := range map[float32]uint16{
		1: 0x3c00, -2: 0xc000, 65504: 0x7bff, 65520: 0x7c00, 1e9: 0x7c00, 5.960464e-8: 0x0001,
		2.9e-8: 0, 1 + 1.0/2048: 0x3c00, 1 + 3.0/2048: 0x3c02, float32(math.Inf(-1)): 0xfc00,
	} {
		if got := F32ToF16(f); got != want {
			t.Errorf("F32ToF16(%v) = %#04x, want %#04x", f, got, want)
		}
	}
	if h := F32ToF16(float32(math.NaN())); F16ToF32(h) == F16ToF32(h) {
		t.Error("NaN did not stay NaN")
	}
	if BF16ToF32(0x3f80) != 1 {
		t.Error("BF16 1.0")
	}
}

func TestQuantize(t *testing.T) {
	v := make([]float32, 96)
	for i := range v {
		v[i] = float32(math.Sin(float64(i)*0.7)) * float32(i%7+1)
	}
	v[40] = 0 // a block of zeros stays zeros
	for i := 64; i < 96; i++ {
		v[i] = 0
	}
	for _, tc := range []struct {
		typ   TensorType
		data  []byte
		steps float32 // quantization steps per block maximum
	}{{Q8_0, QuantizeQ8_0(v), 127}, {Q4_0, QuantizeQ4_0(v), 8}} {
		got := make([]float32, len(v))
		if err := Dequantize(got, tc.typ, tc.data); err != nil {
			t.Fatal(err)
		}
		for blk := range 3 {
			var amax float32
			for _, x := range v[blk*32 : blk*32+32] {
				amax = max(amax, abs(x))
			}
			for i := blk * 32; i < blk*32+32; i++ {
				if d := abs(got[i] - v[i]); d > amax/tc.steps*0.51+1e-6 {
					t.Errorf("%s: element %d = %v, want %v (block max %v)", tc.typ, i, got[i], v[i], amax)
				}
			}
		}
	}
	if err := Dequantize(make([]float32, 32), Q4_K, make([]byte, 144)); err == nil {
		t.Error("dequantized Q4_K")
	}
	if err := Dequantize(make([]float32, 32), Q8_0, make([]byte, 33)); err == nil {
		t.Error("dequantized short data")
	}
}

func TestTypeNames(t *testing.T) {
	if Q4_K.String() != "Q4_K" || TensorType(99).String() != "TensorType(99)" || TypeArray.String() != "array" || ValueType(50).String() != "ValueType(50)" {
		t.Error("names")
	}
	if Q8_0.BlockSize() != 32 || Q8_0.BlockBytes() != 34 || TensorType(99).BlockSize() != 0 {
		t.Error("block sizes")
	}
}
