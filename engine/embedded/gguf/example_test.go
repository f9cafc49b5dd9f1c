package gguf_test

import (
	"fmt"

	"github.com/cocoon-go/cocoon/engine/embedded/gguf"
)

func Example() {
	var w gguf.Writer
	w.AddKV("general.architecture", "llama")
	w.AddKV("llama.context_length", uint32(256))
	w.AddTensor("output_norm.weight", gguf.F32, []uint64{4}, gguf.EncodeF32([]float32{1, 2, 3, 4}))
	data, _ := w.Bytes()

	f, err := gguf.Parse(data)
	if err != nil {
		panic(err)
	}
	arch, _ := f.String("general.architecture")
	ctx, _ := f.Int("llama.context_length")
	t, _ := f.Tensor("output_norm.weight")
	fmt.Println(arch, ctx, t.Type, t.Dims)
	// Output: llama 256 F32 [4]
}
