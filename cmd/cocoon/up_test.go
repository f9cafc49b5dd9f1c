package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/cocoon-go/cocoon/node"
)

// TestUpAndStatus runs `cocoon up` as a user would and reads the network's
// state with `cocoon status`, while it runs and after it has stopped.
func TestUpAndStatus(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "net")
	up := start(t, "up", "up", "--data-dir", dir, "--addr", freeAddr(t))
	up.await(t, `Press Ctrl-C to stop`)

	status := func() node.Status {
		t.Helper()
		cmd := exec.Command(os.Args[0], "status", "--data-dir", dir, "--json")
		cmd.Env = append(os.Environ(), "COCOON_TEST_AS_MAIN=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("status: %v\n%s", err, out)
		}
		var st node.Status
		if err := json.Unmarshal(out, &st); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		return st
	}
	running := status()
	if running.Chain != "local" || running.Root == "" || len(running.Accounts) != 5 {
		t.Fatalf("status while running: %+v", running)
	}
	roles := map[string]int{}
	for _, a := range running.Accounts {
		roles[a.Role]++
		if a.Balance == 0 || a.Address == "" {
			t.Errorf("account %+v has no address or balance", a)
		}
	}
	if roles["client"] != 1 || roles["proxy"] != 1 || roles["worker"] != 2 {
		t.Errorf("roles %v", roles)
	}
	if len(running.Channels) != 3 {
		t.Errorf("channels %+v", running.Channels)
	}
	for _, c := range running.Channels {
		if c.Deposit == 0 || c.State != "open" {
			t.Errorf("channel %+v", c)
		}
	}
	up.stop(t)
	stopped := status()
	if stopped.Root != running.Root || stopped.Accounts[0].Balance != running.Accounts[0].Balance {
		t.Errorf("status after stop differs: %+v vs %+v", stopped, running)
	}
}
