package tsm

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRootedClient(t *testing.T) {
	root := t.TempDir()
	c := &rootedClient{root: root}
	if err := os.MkdirAll(c.host(ReportDir), 0o755); err != nil {
		t.Fatal(err)
	}
	entry, err := c.MkdirTemp(ReportDir, "entry")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(entry, ReportDir+"/entry") {
		t.Errorf("MkdirTemp = %q, want a path under %s", entry, ReportDir)
	}
	if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(entry))); err != nil || !fi.IsDir() {
		t.Errorf("MkdirTemp did not create %s under the root: %v", entry, err)
	}

	outblob := entry + "/outblob"
	for _, tc := range []struct {
		size int
		ok   bool
	}{{MaxEvidenceSize, true}, {MaxEvidenceSize + 1, false}} {
		if err := os.WriteFile(c.host(outblob), make([]byte, tc.size), 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := c.ReadFile(outblob)
		if tc.ok && (err != nil || len(b) != tc.size) {
			t.Errorf("ReadFile of %d bytes: %d bytes, %v", tc.size, len(b), err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "more than")) {
			t.Errorf("ReadFile of %d bytes: %v, want a size error", tc.size, err)
		}
	}
	if err := c.WriteFile(entry+"/inblob", []byte("x")); err == nil {
		t.Error("WriteFile created an attribute that does not exist")
	}
	os.Remove(c.host(outblob))
	if err := c.RemoveAll(entry); err != nil {
		t.Error(err)
	}
}
