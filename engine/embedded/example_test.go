package embedded_test

import (
	"context"
	"fmt"

	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/embedded"
	"github.com/cocoon-go/cocoon/models"
)

func Example() {
	e, err := embedded.Load(models.Name, models.CocoonTiny, embedded.Options{})
	if err != nil {
		panic(err)
	}
	defer e.Close()
	zero := 0.0
	req := &engine.Request{Kind: engine.Chat, Model: models.Name, MaxTokens: 16, Temperature: &zero,
		Messages: []engine.Message{{Role: "user", Content: "Quote Genesis 1:3"}}}
	usage, err := e.Run(context.Background(), req, func(chatCompletion []byte) error { return nil })
	fmt.Println(e.Models()[0].ID, usage.CompletionTokens <= 16, err)
	// Output: cocoon-tiny true <nil>
}
