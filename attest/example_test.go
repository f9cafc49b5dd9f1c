package attest_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/simulated"
	"github.com/cocoon-go/cocoon/price"
)

// A worker binds its keys to a TEE report; a client checks the evidence
// before sealing a prompt to the worker. The simulated TEE stands in for
// TDX here: development only.
func Example() {
	vendor, _ := simulated.NewVendor(make([]byte, simulated.SeedSize)) // the dev vendor `cocoon up` makes

	// Worker, inside the TEE.
	const weights = "4f2c0a9d6b1e3f5a7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
	signing, _, _ := ed25519.GenerateKey(rand.Reader)
	now := time.Now()
	bundle := &attest.Bundle{
		HPKEKey:    []byte{0x00, 0x20, 1, 2, 3}, // from package seal
		SigningKey: signing,
		Models:     []attest.Model{{Name: "qwen3-8b", Hash: weights, Upstream: "Qwen/Qwen3-8B"}},
		Created:    now.Unix(),
		Expires:    now.Add(24 * time.Hour).Unix(),
		// Where prompts go and what they cost: attested with the keys.
		Config: attest.RuntimeConfig{
			Engine: "http://127.0.0.1:8000/v1",
			KEM:    0x0020,
			Price:  price.Default,
		},
	}
	ev, _ := attest.Attest(vendor.Device(simulated.Measurement), bundle, nil)

	// Client: trust the dev vendor's root and allow the simulated image.
	policy := attest.DefaultPolicy()
	policy.SimulatedMeasurements = [][32]byte{simulated.Measurement}
	checker := attest.NewChecker(policy, attest.NewSimulatedVerifier(vendor.Roots()))
	v, err := checker.Check(ev.Marshal())
	if err != nil {
		fmt.Println("refused:", err)
		return
	}
	fmt.Println(v.Bundle.Models[0].Name, v.KeyID == bundle.Hash(), v.Bundle.Config.Engine)
	// Output: qwen3-8b true http://127.0.0.1:8000/v1
}
