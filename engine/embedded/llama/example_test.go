package llama_test

import (
	"fmt"

	"github.com/cocoon-go/cocoon/engine/embedded/gguf"
	"github.com/cocoon-go/cocoon/engine/embedded/llama"
	"github.com/cocoon-go/cocoon/models"
)

func Example() {
	f, err := gguf.Parse(models.CocoonTiny)
	if err != nil {
		panic(err)
	}
	m, err := llama.Load(f, 0)
	if err != nil {
		panic(err)
	}
	s := m.NewState()
	logits, err := s.Forward(0, true) // token 0, at position 0
	fmt.Println(len(logits) == m.Vocab, s.Pos(), err)
	// Output: true 1 <nil>
}
