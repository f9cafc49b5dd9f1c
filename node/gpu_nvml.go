//go:build nvml

package node

import "github.com/cocoon-go/cocoon/attest/nvidia"

// nvmlCollector returns the NVML collector of GPU evidence.
func nvmlCollector() (nvidia.Collector, error) { return nvidia.NVMLCollector{}, nil }
