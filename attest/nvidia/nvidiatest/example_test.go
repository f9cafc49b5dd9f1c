package nvidiatest_test

import (
	"fmt"
	"time"

	"github.com/cocoon-go/cocoon/attest/nvidia"
	"github.com/cocoon-go/cocoon/attest/nvidia/nvidiatest"
)

// A worker's GPU evidence from two made-up GPUs and the double, verified
// with the double's keys as a client pinning them would.
func ExampleNRAS() {
	nras := nvidiatest.NewNRAS()
	defer nras.Close()
	gpu := &nvidia.Producer{Collector: nvidiatest.Collector{GPUs: 2}, NRAS: nras.Client()}
	bundleHash := [32]byte{1, 2, 3}

	evidence, err := gpu.ProduceGPU(bundleHash)
	if err != nil {
		panic(err)
	}
	claims, err := nvidia.NewVerifier(nras.Keys()).VerifyGPU(evidence, bundleHash, time.Now())
	if err != nil {
		panic(err)
	}
	fmt.Println(len(claims.GPUs), claims.GPUs[0].Arch)
	// Output: 2 HOPPER
}
