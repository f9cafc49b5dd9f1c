//go:build nvml

package nvidia

import (
	"fmt"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// NVMLCollector reads GPU evidence through NVML (libnvidia-ml, loaded at
// run time). It is built only with the tag nvml, as go-nvml needs cgo.
type NVMLCollector struct{}

var _ Collector = NVMLCollector{}

// Collect checks that the machine's GPUs are in confidential-computing mode
// (CC feature on, production environment, dev-tools mode off) and returns
// each GPU's attestation report for nonce with its certificate chain.
func (NVMLCollector) Collect(nonce [32]byte) ([]GPUEvidence, error) {
	if ret := nvml.Init(); ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvml: init: %v", ret)
	}
	defer nvml.Shutdown()
	if err := checkCCMode(); err != nil {
		return nil, err
	}
	n, ret := nvml.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("nvml: device count: %v", ret)
	}
	if n == 0 {
		return nil, fmt.Errorf("nvml: no GPUs")
	}
	var out []GPUEvidence
	for i := range n {
		g, err := collectGPU(i, nonce)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// checkCCMode refuses unless the system's GPUs run in production
// confidential-computing mode. In dev-tools mode the GPU's memory can be
// read by debuggers, so its evidence must not vouch for confidentiality.
func checkCCMode() error {
	s, ret := nvml.SystemGetConfComputeState()
	if ret != nvml.SUCCESS {
		return fmt.Errorf("nvml: confidential-computing state: %v (driver without CC support?)", ret)
	}
	if s.CcFeature != nvml.CC_SYSTEM_FEATURE_ENABLED {
		return fmt.Errorf("nvml: GPUs are not in confidential-computing mode (CC feature off); enable it, for example with nvtrust's gpu_cc_tool --set-cc-mode on")
	}
	if s.DevToolsMode != nvml.CC_SYSTEM_DEVTOOLS_MODE_OFF {
		return fmt.Errorf("nvml: GPUs are in confidential-computing dev-tools mode, which allows debugging: not confidential")
	}
	if s.Environment != nvml.CC_SYSTEM_ENVIRONMENT_PROD {
		return fmt.Errorf("nvml: confidential-computing environment %d is not production (%d)", s.Environment, nvml.CC_SYSTEM_ENVIRONMENT_PROD)
	}
	return nil
}

func collectGPU(i int, nonce [32]byte) (GPUEvidence, error) {
	d, ret := nvml.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return GPUEvidence{}, fmt.Errorf("nvml: GPU %d: %v", i, ret)
	}
	arch, ret := d.GetArchitecture()
	if ret != nvml.SUCCESS {
		return GPUEvidence{}, fmt.Errorf("nvml: GPU %d: architecture: %v", i, ret)
	}
	name := archName(arch)
	if name == "" {
		return GPUEvidence{}, fmt.Errorf("nvml: GPU %d: architecture %d has no confidential computing", i, arch)
	}
	report := nvml.ConfComputeGpuAttestationReport{Nonce: nonce}
	if ret := d.GetConfComputeGpuAttestationReport(&report); ret != nvml.SUCCESS {
		return GPUEvidence{}, fmt.Errorf("nvml: GPU %d: attestation report: %v", i, ret)
	}
	cert, ret := d.GetConfComputeGpuCertificate()
	if ret != nvml.SUCCESS {
		return GPUEvidence{}, fmt.Errorf("nvml: GPU %d: attestation certificate: %v", i, ret)
	}
	if int(report.AttestationReportSize) > len(report.AttestationReport) ||
		int(cert.AttestationCertChainSize) > len(cert.AttestationCertChain) {
		return GPUEvidence{}, fmt.Errorf("nvml: GPU %d: report or certificate size out of range", i)
	}
	return GPUEvidence{
		Arch:      name,
		Report:    append([]byte(nil), report.AttestationReport[:report.AttestationReportSize]...),
		CertChain: append([]byte(nil), cert.AttestationCertChain[:cert.AttestationCertChainSize]...),
	}, nil
}

func archName(a nvml.DeviceArchitecture) string {
	switch a {
	case nvml.DEVICE_ARCH_HOPPER:
		return "HOPPER"
	case nvml.DEVICE_ARCH_BLACKWELL:
		return "BLACKWELL"
	}
	return ""
}
