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
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}} {{.Standard}} {{len .CgoFiles}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("unexpected go list line %q", line)
		}
		path, std, cgo := f[0], f[1] == "true", f[2] != "0"
		if strings.Contains(path, "go-nvml") || strings.HasSuffix(path, "/attest/simulated") {
			t.Errorf("attest/nvidia depends on %s", path)
		}
		if cgo && !std {
			t.Errorf("attest/nvidia depends on %s, which uses cgo", path)
		}
	}
}
