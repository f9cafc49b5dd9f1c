package llama

import (
	"encoding/binary"
	"fmt"
	"sync"
	"unsafe"

	"github.com/cocoon-go/cocoon/engine/embedded/gguf"
)

// matrix is a weight matrix of rows×cols, each row contiguous, stored either
// as float32 or as Q8_0 blocks (32 int8 weights sharing one F16 scale).
type matrix struct {
	rows, cols int
	f32        []float32
	q8         []byte // rows*cols/32 blocks of 34 bytes
}

const (
	q8Block = 32
	q8Bytes = 34
)

// littleEndian reports whether the machine stores numbers as GGUF does, so
// that F32 tensor data can be used in place.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// loadMatrix makes a matrix of t, which must be rows×cols. F32 data and Q8_0
// blocks are used in place; F16 and BF16 are widened to float32 and Q4_0 is
// widened to Q8_0 blocks, which hold its values exactly.
func loadMatrix(t *gguf.Tensor, cols, rows int) (matrix, error) {
	switch t.Type {
	case gguf.F32, gguf.F16, gguf.BF16, gguf.Q8_0, gguf.Q4_0:
	default:
		return matrix{}, fmt.Errorf("%w: tensor %s has type %s; supported are F32, F16, BF16, Q8_0 and Q4_0", ErrUnsupported, t.Name, t.Type)
	}
	if len(t.Dims) > 2 || t.Dims[0] != uint64(cols) || t.Elements() != uint64(rows)*uint64(cols) {
		return matrix{}, fmt.Errorf("llama: tensor %s has shape %v, want [%d %d]", t.Name, t.Dims, cols, rows)
	}
	m := matrix{rows: rows, cols: cols}
	n := rows * cols
	switch t.Type {
	case gguf.F32:
		if littleEndian && uintptr(unsafe.Pointer(unsafe.SliceData(t.Data)))%4 == 0 {
			m.f32 = unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(t.Data))), n)
			return m, nil
		}
		fallthrough
	case gguf.F16, gguf.BF16:
		m.f32 = make([]float32, n)
		if err := gguf.Dequantize(m.f32, t.Type, t.Data); err != nil {
			return matrix{}, fmt.Errorf("llama: tensor %s: %w", t.Name, err)
		}
	case gguf.Q8_0:
		m.q8 = t.Data
	case gguf.Q4_0:
		m.q8 = make([]byte, 0, n/q8Block*q8Bytes)
		for blk := range n / q8Block {
			b := t.Data[blk*18 : blk*18+18]
			m.q8 = append(m.q8, b[0], b[1]) // the same F16 scale
			var hi [16]byte
			for j, q := range b[2:] {
				m.q8 = append(m.q8, byte(int8(q&0xf)-8))
				hi[j] = byte(int8(q>>4) - 8)
			}
			m.q8 = append(m.q8, hi[:]...)
		}
	}
	return m, nil
}

// row writes row i of m, as float32, to dst.
func (m *matrix) row(i int, dst []float32) {
	if m.f32 != nil {
		copy(dst, m.f32[i*m.cols:(i+1)*m.cols])
		return
	}
	nb := m.cols / q8Block
	blocks := m.q8[i*nb*q8Bytes : (i+1)*nb*q8Bytes]
	for b := range nb {
		blk := blocks[b*q8Bytes : (b+1)*q8Bytes]
		d := gguf.F16ToF32(binary.LittleEndian.Uint16(blk))
		for j, q := range blk[2:] {
			dst[b*q8Block+j] = float32(int8(q)) * d
		}
	}
}

// mulRows sets out[b][r] = row r of m · x[b] for rows lo to hi and every
// vector b of the batch. A row is read from memory once for the whole batch.
func (m *matrix) mulRows(out, x [][]float32, lo, hi int) {
	if m.f32 != nil {
		for r := lo; r < hi; r++ {
			row := m.f32[r*m.cols : (r+1)*m.cols]
			for b := range x {
				out[b][r] = dot(row, x[b])
			}
		}
		return
	}
	rowBytes := m.cols / q8Block * q8Bytes
	for r := lo; r < hi; r++ {
		row := m.q8[r*rowBytes : (r+1)*rowBytes]
		for b := range x {
			out[b][r] = dotQ8(row, x[b])
		}
	}
}

// dot is the dot product of two float32 vectors of equal length, unrolled
// into four independent sums so the adds can overlap.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i <= len(a)-8; i += 8 {
		aa, bb := a[i:i+8:i+8], b[i:i+8:i+8]
		s0 += aa[0]*bb[0] + aa[4]*bb[4]
		s1 += aa[1]*bb[1] + aa[5]*bb[5]
		s2 += aa[2]*bb[2] + aa[6]*bb[6]
		s3 += aa[3]*bb[3] + aa[7]*bb[7]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// int8f maps a Q8_0 weight byte to its value: a table lookup is cheaper than
// converting the integer to float32 in the inner loop.
var int8f [256]float32

func init() {
	for i := range int8f {
		int8f[i] = float32(int8(uint8(i)))
	}
}

// dotQ8 is the dot product of a row of Q8_0 blocks with x.
func dotQ8(blocks []byte, x []float32) float32 {
	var sum float32
	for len(blocks) >= q8Bytes {
		blk := blocks[:q8Bytes:q8Bytes]
		xx := x[:q8Block:q8Block]
		q := blk[2:]
		var s0, s1, s2, s3 float32
		for j := 0; j < q8Block; j += 8 {
			qq, xb := q[j:j+8:j+8], xx[j:j+8:j+8]
			s0 += int8f[qq[0]]*xb[0] + int8f[qq[4]]*xb[4]
			s1 += int8f[qq[1]]*xb[1] + int8f[qq[5]]*xb[5]
			s2 += int8f[qq[2]]*xb[2] + int8f[qq[6]]*xb[6]
			s3 += int8f[qq[3]]*xb[3] + int8f[qq[7]]*xb[7]
		}
		sum += ((s0 + s1) + (s2 + s3)) * gguf.F16ToF32(uint16(blk[0])|uint16(blk[1])<<8)
		blocks, x = blocks[q8Bytes:], x[q8Block:]
	}
	return sum
}

// matvec is one product out[b] = w·x[b] for a batch of vectors, in a set
// of products that run in parallel.
type matvec struct {
	w   *matrix
	out [][]float32
	x   [][]float32
}

// minParallelWork is the number of multiply-adds below which a set of
// products is not worth splitting across goroutines.
const minParallelWork = 1 << 15

// mulAll computes a set of products, splitting their rows evenly over up to
// threads goroutines.
func mulAll(threads int, batch ...matvec) {
	rows, work := 0, 0
	for _, mv := range batch {
		rows += mv.w.rows
		work += mv.w.rows * mv.w.cols * len(mv.x)
	}
	if threads <= 1 || work < minParallelWork {
		for _, mv := range batch {
			mv.w.mulRows(mv.out, mv.x, 0, mv.w.rows)
		}
		return
	}
	// Chunk k of threads covers global rows [k*rows/threads, (k+1)*rows/threads),
	// mapped onto the products in order.
	run := func(lo, hi int) {
		base := 0
		for _, mv := range batch {
			a, b := max(lo-base, 0), min(hi-base, mv.w.rows)
			if a < b {
				mv.w.mulRows(mv.out, mv.x, a, b)
			}
			base += mv.w.rows
		}
	}
	var wg sync.WaitGroup
	for k := 1; k < threads; k++ {
		wg.Go(func() { run(k*rows/threads, (k+1)*rows/threads) })
	}
	run(0, rows/threads)
	wg.Wait()
}
