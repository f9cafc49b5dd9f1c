package nvidia_test

import (
	"fmt"

	"github.com/cocoon-go/cocoon/attest/nvidia"
	"github.com/cocoon-go/cocoon/attest/nvidia/nvidiatest"
)

// A worker produces GPU evidence bound to its bundle hash through NRAS (here
// a test double), and a client verifies it against pinned NRAS keys.
func ExampleVerifier() {
	nras := nvidiatest.NewNRAS(atTestNow) // stands in for https://nras.attestation.nvidia.com
	defer nras.Close()
	bundleHash := [32]byte{1, 2, 3}

	// Worker: collect each GPU's report for the bundle hash, have NRAS verify it.
	producer := &nvidia.Producer{Collector: nvidiatest.Collector{GPUs: 1, Arch: "HOPPER"}, NRAS: &nvidia.NRAS{URL: nras.URL()}}
	gpuEvidence, err := producer.ProduceGPU(bundleHash)
	if err != nil {
		panic(err)
	}

	// Client: verify offline with the pinned JWKS (nvidia.LoadJWKS in production).
	keys, err := nvidia.ParseJWKS(nras.JWKS())
	if err != nil {
		panic(err)
	}
	claims, err := nvidia.NewVerifier(keys).VerifyGPU(gpuEvidence, bundleHash, testNow)
	if err != nil {
		panic(err)
	}
	for _, g := range claims.GPUs {
		fmt.Printf("%s %s driver %s, valid until %s\n", g.Arch, g.Model, g.Driver, claims.ValidUntil.Format("15:04"))
	}
	// Output: HOPPER GH100 A01 GSP BROM driver 570.133.20, valid until 13:00
}
