//go:build !nvml

package node

import (
	"errors"

	"github.com/cocoon-go/cocoon/attest/nvidia"
)

// nvmlCollector reports that this binary cannot read GPU evidence: NVML
// needs cgo, so it is built only with -tags nvml.
func nvmlCollector() (nvidia.Collector, error) {
	return nil, errors.New("this binary was built without NVML; rebuild it on the GPU machine with `go build -tags nvml ./cmd/cocoon` (needs cgo and the NVIDIA driver's libnvidia-ml)")
}
