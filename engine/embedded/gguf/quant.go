package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// F16ToF32 converts an IEEE 754 half-precision number to float32.
func F16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0:
		f := float32(mant) * (1.0 / (1 << 24)) // subnormal: mant·2^-24
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// F32ToF16 converts a float32 to half precision, rounding to nearest even.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 112 // rebias from 127 to 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	var h, rem, half uint32
	if e <= 0 {
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint32(14 - e)
		h, rem, half = m>>shift, m&(1<<shift-1), 1<<(shift-1)
	} else {
		h, rem, half = uint32(e)<<10|mant>>13, mant&0x1fff, 0x1000
	}
	if rem > half || rem == half && h&1 == 1 {
		h++ // may carry into the exponent, up to infinity, as it should
	}
	return sign | uint16(h)
}

// BF16ToF32 converts a bfloat16 to float32.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// EncodeF32 encodes v as F32 tensor data.
func EncodeF32(v []float32) []byte {
	out := make([]byte, 0, 4*len(v))
	for _, x := range v {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(x))
	}
	return out
}

// EncodeF16 encodes v as F16 tensor data.
func EncodeF16(v []float32) []byte {
	out := make([]byte, 0, 2*len(v))
	for _, x := range v {
		out = binary.LittleEndian.AppendUint16(out, F32ToF16(x))
	}
	return out
}

// QuantizeQ8_0 encodes v as Q8_0 blocks the way ggml's reference quantizer
// does. len(v) must be a multiple of 32.
func QuantizeQ8_0(v []float32) []byte {
	out := make([]byte, 0, len(v)/32*34)
	for blk := range len(v) / 32 {
		x := v[blk*32 : blk*32+32]
		var amax float32
		for _, f := range x {
			amax = max(amax, abs(f))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		out = binary.LittleEndian.AppendUint16(out, F32ToF16(d))
		for _, f := range x {
			out = append(out, byte(int8(math.Round(float64(f*id)))))
		}
	}
	return out
}

// QuantizeQ4_0 encodes v as Q4_0 blocks the way ggml's reference quantizer
// does. len(v) must be a multiple of 32.
func QuantizeQ4_0(v []float32) []byte {
	out := make([]byte, 0, len(v)/32*18)
	for blk := range len(v) / 32 {
		x := v[blk*32 : blk*32+32]
		var amax, vmax float32
		for _, f := range x {
			if abs(f) > amax {
				amax, vmax = abs(f), f
			}
		}
		d := vmax / -8
		var id float32
		if d != 0 {
			id = 1 / d
		}
		out = binary.LittleEndian.AppendUint16(out, F32ToF16(d))
		for j := range 16 {
			lo := min(15, int8(x[j]*id+8.5))
			hi := min(15, int8(x[j+16]*id+8.5))
			out = append(out, byte(lo)|byte(hi)<<4)
		}
	}
	return out
}

func abs(f float32) float32 { return math.Float32frombits(math.Float32bits(f) &^ (1 << 31)) }

// Dequantize decodes src, tensor data of type t, into dst. It supports F32,
// F16, BF16, Q8_0 and Q4_0.
func Dequantize(dst []float32, t TensorType, src []byte) error {
	l, ok := layouts[t]
	if !ok || uint64(len(dst))%l.block != 0 || uint64(len(src)) != uint64(len(dst))/l.block*l.nbytes {
		return fmt.Errorf("gguf: %d bytes of %s do not hold %d elements", len(src), t, len(dst))
	}
	le := binary.LittleEndian
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = F16ToF32(le.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = BF16ToF32(le.Uint16(src[2*i:]))
		}
	case Q8_0:
		for blk := range len(dst) / 32 {
			b := src[blk*34 : blk*34+34]
			d := F16ToF32(le.Uint16(b))
			for j, q := range b[2:] {
				dst[blk*32+j] = float32(int8(q)) * d
			}
		}
	case Q4_0:
		for blk := range len(dst) / 32 {
			b := src[blk*18 : blk*18+18]
			d := F16ToF32(le.Uint16(b))
			for j, q := range b[2:] {
				dst[blk*32+j] = float32(int(q&0xf)-8) * d
				dst[blk*32+j+16] = float32(int(q>>4)-8) * d
			}
		}
	default:
		return fmt.Errorf("gguf: cannot dequantize tensor type %s", t)
	}
	return nil
}
