package nvidia_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies pins that the default build needs no cgo: NVML, which
// does, is reached only with the build tag nvml.
func TestDependencies(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	// Lists the packages outside the standard library that use cgo or NVML.
	const format = `{{if and (not .Standard) (or .CgoFiles (eq .Module.Path "github.com/NVIDIA/go-nvml"))}}{{.ImportPath}}{{end}}`
	out, err := exec.Command(goTool, "list", "-deps", "-f", format, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if bad := strings.TrimSpace(string(out)); bad != "" {
		t.Errorf("the default build of attest/nvidia depends on cgo or NVML:\n%s", bad)
	}
}
