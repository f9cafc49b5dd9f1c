package tsm_test

import (
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/cocoon-go/cocoon/attest/tsm"
)

// TestDependencies pins what workers get by importing tsm: never the
// simulated TEE's private keys, and no cgo outside the standard library.
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
		if strings.HasSuffix(path, "/attest/simulated") {
			t.Errorf("tsm depends on %s, which holds the simulated vendor's private keys", path)
		}
		if cgo && !std {
			t.Errorf("tsm depends on %s, which uses cgo", path)
		}
	}
}

func TestDetectOtherOS(t *testing.T) {
	if runtime.GOOS == "linux" {
		t.Skip("on Linux, Detect looks at the machine")
	}
	_, err := tsm.Detect()
	noTEE(t, err, tsm.ReasonUnsupportedOS)
}
