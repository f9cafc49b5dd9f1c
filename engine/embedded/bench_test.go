package embedded

import (
	"context"
	"testing"

	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/embedded/gguf"
	"github.com/cocoon-go/cocoon/engine/embedded/internal/testmodel"
	"github.com/cocoon-go/cocoon/models"
)

// BenchmarkDecode measures answer tokens per second, the prompt included in
// the time, on the shipped model and on a generated one of 256 dimensions
// and 6 layers.
func BenchmarkDecode(b *testing.B) {
	generated, err := testmodel.Build(testmodel.Config{Dim: 256, Layers: 6, Heads: 8, KVHeads: 4, FFN: 768, Context: 512, Type: gguf.F16})
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range []struct {
		name string
		data []byte
	}{{models.Name, models.CocoonTiny}, {"dim256-6layers", generated}} {
		b.Run(m.name, func(b *testing.B) {
			e, err := Load(m.name, m.data, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			req := &engine.Request{Kind: engine.Completion, Model: m.name, Prompt: "And God said", MaxTokens: 128, Temperature: f64(0), Stream: true}
			var tokens uint64
			for b.Loop() {
				r := run(context.Background(), e, req)
				if r.err != nil {
					b.Fatal(r.err)
				}
				tokens += r.usage.CompletionTokens
			}
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
