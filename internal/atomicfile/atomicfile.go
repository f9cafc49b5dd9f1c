// Package atomicfile replaces files so that a reader, or a restart after a crash, sees the old contents or the new ones whole.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data and mode perm, durably: it writes a temporary file in the same
// directory, fsyncs it, renames it over path and fsyncs the directory. If it fails, path is as it was.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, true)
}

// WriteFileNoSync is WriteFile without the fsyncs: the new file survives the process being killed (the
// kernel has the bytes), but not the machine crashing.
func WriteFileNoSync(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, false)
}

func write(path string, data []byte, perm os.FileMode, sync bool) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after the rename, there is nothing left to remove
	if err := fill(tmp, data, perm, sync); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if sync {
		return SyncDir(dir)
	}
	return nil
}

func fill(f *os.File, data []byte, perm os.FileMode, sync bool) error {
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if sync {
		return f.Sync()
	}
	return nil
}

// SyncDir fsyncs the directory dir, so that the entries created or renamed in it last survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ErrLocked reports a lock that another process (or another Lock in this
// one) holds.
var ErrLocked = errors.New("atomicfile: locked by another user")
