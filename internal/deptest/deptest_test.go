// Package deptest pins what may depend on what.
package deptest

import (
	"os/exec"
	"path"
	"strings"
	"testing"
)

func deps(t *testing.T, env []string, format string, pkgs ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f", format}, pkgs...)...)
	cmd.Env = append(cmd.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.Fields(string(out))
}

// The client and the proxy must not be able to reach the simulated TEE's
// private keys: they verify evidence, they never produce it.
func TestVerifiersCannotProduceSimulatedEvidence(t *testing.T) {
	for _, pkg := range []string{
		"github.com/cocoon-go/cocoon/client", "github.com/cocoon-go/cocoon/proxy", "github.com/cocoon-go/cocoon/worker",
		"github.com/cocoon-go/cocoon/attest", "github.com/cocoon-go/cocoon/attest/tdx", "github.com/cocoon-go/cocoon/attest/snp",
		"github.com/cocoon-go/cocoon/attest/nvidia", "github.com/cocoon-go/cocoon/attest/tsm", "github.com/cocoon-go/cocoon/attest/collateral",
	} {
		for _, d := range deps(t, nil, "{{.ImportPath}}", pkg) {
			if d == "github.com/cocoon-go/cocoon/attest/simulated" {
				t.Errorf("%s imports the simulated TEE", pkg)
			}
		}
	}
}

// The default build needs no cgo: `go run ./cmd/cocoon up` works with only
// Go installed. NVML, which needs cgo, is reached only with -tags nvml.
func TestNoCgo(t *testing.T) {
	for _, line := range deps(t, []string{"CGO_ENABLED=1"}, "{{if .CgoFiles}}{{if not .Standard}}{{.ImportPath}}{{end}}{{end}}", "github.com/cocoon-go/cocoon/cmd/cocoon") {
		t.Errorf("%s uses cgo", line)
	}
	for _, d := range deps(t, nil, "{{.ImportPath}}", "github.com/cocoon-go/cocoon/cmd/cocoon") {
		if strings.HasPrefix(d, "github.com/NVIDIA/go-nvml") {
			t.Errorf("the default build imports %s", d)
		}
		// Test doubles never reach the binary.
		switch path.Base(d) {
		case "nvidiatest", "enginetest", "testnet", "testmodel":
			t.Errorf("the binary imports the test double %s", d)
		}
	}
	// And the whole binary builds without it.
	cmd := exec.Command("go", "list", "-deps", "-e", "-f", "{{if .Error}}{{.ImportPath}}: {{.Error}}{{end}}", "github.com/cocoon-go/cocoon/cmd/cocoon")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("CGO_ENABLED=0: %v %s", err, out)
	}
}

// The roles are libraries that node assembles; they never reach back into
// the assembly layer.
func TestRolesDoNotImportNode(t *testing.T) {
	for _, pkg := range []string{"client", "proxy", "worker"} {
		for _, d := range deps(t, nil, "{{.ImportPath}}", "github.com/cocoon-go/cocoon/"+pkg) {
			if d == "github.com/cocoon-go/cocoon/node" {
				t.Errorf("%s imports node", pkg)
			}
		}
	}
}

// Message and sealing packages hold formats only: nothing of TON links into
// them (voucher HTTP lives in payments), so a browser or Mini App build of
// the confidential half stays small and a message type never drags in a
// chain.
func TestMessagesImportNothingOfTON(t *testing.T) {
	ton := []string{"github.com/xssnick/tonutils-go", "github.com/cocoon-go/cocoon/contracts",
		"github.com/cocoon-go/cocoon/chain", "github.com/cocoon-go/cocoon/payments"}
	for _, pkg := range []string{"wire", "api", "seal"} {
		for _, d := range deps(t, nil, "{{.ImportPath}}", "github.com/cocoon-go/cocoon/"+pkg) {
			for _, bad := range ton {
				if d == bad || strings.HasPrefix(d, bad+"/") {
					t.Errorf("%s imports %s", pkg, d)
				}
			}
		}
	}
}
