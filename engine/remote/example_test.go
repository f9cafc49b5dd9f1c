package remote_test

import (
	"context"
	"fmt"

	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/engine/enginetest"
	"github.com/cocoon-go/cocoon/engine/remote"
)

func ExampleNew() {
	vllm := enginetest.NewFakeServer(enginetest.FakeOptions{Models: []string{"Qwen/Qwen3-8B"}})
	defer vllm.Close()

	e, err := remote.New(context.Background(), remote.Config{
		BaseURL:   vllm.URL, // e.g. http://127.0.0.1:8000/v1
		Models:    map[string]string{"qwen3-8b": "Qwen/Qwen3-8B"},
		CacheSalt: true,
	})
	if err != nil {
		panic(err)
	}
	defer e.Close()
	req := &engine.Request{
		Kind: engine.Chat, ID: "chatcmpl-1", Model: "qwen3-8b", Stream: true, CacheSalt: "client-1",
		Body: []byte(`{"model":"qwen3-8b","stream":true,"messages":[{"role":"user","content":"Hi there"}]}`),
	}
	usage, err := e.Run(context.Background(), req, func(chunk []byte) error {
		return nil // the worker seals each chunk and sends it on
	})
	fmt.Println(usage, err)
	// Output: {2 0 9} <nil>
}
