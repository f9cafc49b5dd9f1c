package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"reflect"
)

// Writer builds a GGUF version 3 file. Tests use it to make models; it keeps
// everything in memory.
type Writer struct {
	kv      []KV
	tensors []Tensor
}

// AddKV appends a metadata entry. value must be one of the Go types KV
// documents; the type decides the GGUF type. An int is written as int32 and
// an []int as an int32 array. A general.alignment entry (a uint32) sets the
// alignment of tensor data.
func (w *Writer) AddKV(key string, value any) {
	switch v := value.(type) {
	case int:
		value = int32(v)
	case []int:
		s := make([]int32, len(v))
		for i, x := range v {
			s[i] = int32(x)
		}
		value = s
	}
	w.kv = append(w.kv, KV{key, value})
}

// AddTensor appends a tensor. dims are fastest-varying first; data must hold
// exactly the encoded elements.
func (w *Writer) AddTensor(name string, typ TensorType, dims []uint64, data []byte) {
	w.tensors = append(w.tensors, Tensor{Name: name, Type: typ, Dims: dims, Data: data})
}

func (w *Writer) alignment() int {
	for _, kv := range w.kv {
		if a, ok := kv.Value.(uint32); ok && kv.Key == "general.alignment" && a > 0 {
			return int(a)
		}
	}
	return DefaultAlignment
}

// Bytes encodes the file.
func (w *Writer) Bytes() ([]byte, error) {
	var b bytes.Buffer
	if _, err := w.WriteTo(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteTo encodes the file to out.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	align := w.alignment()
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString(Magic)
	b.Write(le.AppendUint32(nil, 3))
	b.Write(le.AppendUint64(nil, uint64(len(w.tensors))))
	b.Write(le.AppendUint64(nil, uint64(len(w.kv))))
	for _, kv := range w.kv {
		writeString(&b, kv.Key)
		if err := writeValue(&b, kv.Value, true); err != nil {
			return 0, fmt.Errorf("gguf: metadata %s: %w", kv.Key, err)
		}
	}
	var offset uint64
	for _, t := range w.tensors {
		l, ok := layouts[t.Type]
		if !ok {
			return 0, fmt.Errorf("gguf: tensor %s has unknown type %d", t.Name, uint32(t.Type))
		}
		if want := t.Elements() / l.block * l.nbytes; uint64(len(t.Data)) != want {
			return 0, fmt.Errorf("gguf: tensor %s of type %s and dims %v needs %d bytes, has %d", t.Name, t.Type, t.Dims, want, len(t.Data))
		}
		writeString(&b, t.Name)
		b.Write(le.AppendUint32(nil, uint32(len(t.Dims))))
		for _, d := range t.Dims {
			b.Write(le.AppendUint64(nil, d))
		}
		b.Write(le.AppendUint32(nil, uint32(t.Type)))
		b.Write(le.AppendUint64(nil, offset))
		offset += uint64(alignUp(len(t.Data), align))
	}
	pad := func() { b.Write(make([]byte, alignUp(b.Len(), align)-b.Len())) }
	for _, t := range w.tensors {
		pad()
		b.Write(t.Data)
	}
	return b.WriteTo(out)
}

func writeString(b *bytes.Buffer, s string) {
	b.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(s))))
	b.WriteString(s)
}

// writeValue writes v, preceded by its type tag when tagged.
func writeValue(b *bytes.Buffer, v any, tagged bool) error {
	le := binary.LittleEndian
	tag := func(t ValueType) {
		if tagged {
			b.Write(le.AppendUint32(nil, uint32(t)))
		}
	}
	switch x := v.(type) {
	case uint8:
		tag(TypeUint8)
		b.WriteByte(x)
	case int8:
		tag(TypeInt8)
		b.WriteByte(byte(x))
	case uint16:
		tag(TypeUint16)
		b.Write(le.AppendUint16(nil, x))
	case int16:
		tag(TypeInt16)
		b.Write(le.AppendUint16(nil, uint16(x)))
	case uint32:
		tag(TypeUint32)
		b.Write(le.AppendUint32(nil, x))
	case int32:
		tag(TypeInt32)
		b.Write(le.AppendUint32(nil, uint32(x)))
	case float32:
		tag(TypeFloat32)
		b.Write(le.AppendUint32(nil, math.Float32bits(x)))
	case bool:
		tag(TypeBool)
		if x {
			b.WriteByte(1)
		} else {
			b.WriteByte(0)
		}
	case string:
		tag(TypeString)
		writeString(b, x)
	case uint64:
		tag(TypeUint64)
		b.Write(le.AppendUint64(nil, x))
	case int64:
		tag(TypeInt64)
		b.Write(le.AppendUint64(nil, uint64(x)))
	case float64:
		tag(TypeFloat64)
		b.Write(le.AppendUint64(nil, math.Float64bits(x)))
	case []uint8:
		return writeArray(b, tagged, TypeUint8, x)
	case []int8:
		return writeArray(b, tagged, TypeInt8, x)
	case []uint16:
		return writeArray(b, tagged, TypeUint16, x)
	case []int16:
		return writeArray(b, tagged, TypeInt16, x)
	case []uint32:
		return writeArray(b, tagged, TypeUint32, x)
	case []int32:
		return writeArray(b, tagged, TypeInt32, x)
	case []float32:
		return writeArray(b, tagged, TypeFloat32, x)
	case []bool:
		return writeArray(b, tagged, TypeBool, x)
	case []string:
		return writeArray(b, tagged, TypeString, x)
	case []uint64:
		return writeArray(b, tagged, TypeUint64, x)
	case []int64:
		return writeArray(b, tagged, TypeInt64, x)
	case []float64:
		return writeArray(b, tagged, TypeFloat64, x)
	case []any:
		return writeArray(b, tagged, TypeArray, x)
	default:
		return fmt.Errorf("unsupported value type %T", v)
	}
	return nil
}

func writeArray[T any](b *bytes.Buffer, tagged bool, elem ValueType, s []T) error {
	if tagged {
		b.Write(binary.LittleEndian.AppendUint32(nil, uint32(TypeArray)))
	}
	b.Write(binary.LittleEndian.AppendUint32(nil, uint32(elem)))
	b.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(s))))
	for _, e := range s {
		if elem == TypeArray && reflect.ValueOf(e).Kind() != reflect.Slice {
			return fmt.Errorf("array of arrays holds a %T", e)
		}
		if err := writeValue(b, e, false); err != nil {
			return err
		}
	}
	return nil
}
