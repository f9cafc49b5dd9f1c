package atomicfile_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cocoon-go/cocoon/internal/atomicfile"
)

func TestWriteFile(t *testing.T) {
	for _, write := range []struct {
		name string
		fn   func(string, []byte, os.FileMode) error
	}{{"sync", atomicfile.WriteFile}, {"nosync", atomicfile.WriteFileNoSync}} {
		t.Run(write.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			for _, c := range []struct {
				data []byte
				perm os.FileMode
			}{{[]byte("first"), 0o600}, {[]byte("second, longer"), 0o640}, {nil, 0o600}} {
				if err := write.fn(path, c.data, c.perm); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, c.data) {
					t.Fatalf("contents %q, want %q", got, c.data)
				}
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if runtime.GOOS != "windows" && fi.Mode().Perm() != c.perm {
					t.Fatalf("mode %v, want %v", fi.Mode().Perm(), c.perm)
				}
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 1 {
				t.Fatalf("%d entries in the directory, want only the file", len(ents))
			}
		})
	}
}

// A write that fails leaves what was at the path as it was, and no temporary file behind.
func TestWriteFileFailed(t *testing.T) {
	t.Run("rename", func(t *testing.T) {
		// A non-empty directory at the path: the temporary file is written, the rename over it fails.
		dir := t.TempDir()
		path := filepath.Join(dir, "d")
		if err := os.Mkdir(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := atomicfile.WriteFile(filepath.Join(path, "old"), []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := atomicfile.WriteFile(path, []byte("new"), 0o600); err == nil {
			t.Fatal("replacing a non-empty directory succeeded")
		}
		if got, err := os.ReadFile(filepath.Join(path, "old")); err != nil || string(got) != "old" {
			t.Fatalf("old contents: %q, %v", got, err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Fatalf("%d entries in the directory, want only the old one", len(ents))
		}
	})
	t.Run("create", func(t *testing.T) {
		// A read-only directory: the temporary file cannot be created.
		if runtime.GOOS == "windows" || os.Geteuid() == 0 {
			t.Skip("permissions are not enforced here")
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "f")
		if err := atomicfile.WriteFile(path, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o700) })
		if err := atomicfile.WriteFile(path, []byte("new"), 0o600); err == nil {
			t.Fatal("writing into a read-only directory succeeded")
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != "old" {
			t.Fatalf("old file: %q, %v", got, err)
		}
	})
}

func TestSyncDir(t *testing.T) {
	if err := atomicfile.SyncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("syncing a missing directory succeeded")
	}
}

func ExampleWriteFile() {
	path := filepath.Join(os.TempDir(), "atomicfile-example.json")
	defer os.Remove(path)
	if err := atomicfile.WriteFile(path, []byte(`{"ok":true}`+"\n"), 0o600); err != nil {
		panic(err)
	}
	b, _ := os.ReadFile(path)
	os.Stdout.Write(b)
	// Output: {"ok":true}
}

func TestLock(t *testing.T) {
	name := filepath.Join(t.TempDir(), "x.lock")
	f, err := atomicfile.Lock(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := atomicfile.Lock(name); !errors.Is(err, atomicfile.ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	f.Close()
	g, err := atomicfile.Lock(name)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	g.Close()
}
