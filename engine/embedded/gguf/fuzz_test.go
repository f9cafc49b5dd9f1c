package gguf

import (
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. The committed corpus under
// testdata/fuzz/FuzzParse holds small valid files and damaged ones.
func FuzzParse(f *testing.F) {
	b, _ := sample(f)
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			return
		}
		for _, tn := range file.Tensors {
			if want := tn.Elements() / uint64(tn.Type.BlockSize()) * uint64(tn.Type.BlockBytes()); uint64(len(tn.Data)) != want {
				t.Fatalf("tensor %s: %d bytes of data, want %d", tn.Name, len(tn.Data), want)
			}
			if tn.Type == F32 || tn.Type == F16 || tn.Type == Q8_0 || tn.Type == Q4_0 {
				if tn.Elements() < 1<<16 {
					if err := Dequantize(make([]float32, tn.Elements()), tn.Type, tn.Data); err != nil {
						t.Fatalf("tensor %s: %v", tn.Name, err)
					}
				}
			}
		}
		// Whatever parses must survive a round trip through the Writer.
		var w Writer
		for _, kv := range file.KV {
			w.AddKV(kv.Key, kv.Value)
		}
		for _, tn := range file.Tensors {
			w.AddTensor(tn.Name, tn.Type, tn.Dims, tn.Data)
		}
		again, err := w.Bytes()
		if err != nil {
			t.Fatalf("rewrite: %v", err)
		}
		if _, err := Parse(again); err != nil {
			t.Fatalf("reparse: %v", err)
		}
	})
}
