package models

import (
	"encoding/binary"
	"testing"
)

func TestCocoonTinyIsGGUFv3(t *testing.T) {
	if len(CocoonTiny) < 24 {
		t.Fatalf("embedded model is %d bytes, want a GGUF file", len(CocoonTiny))
	}
	if magic := string(CocoonTiny[:4]); magic != "GGUF" {
		t.Fatalf("magic = %q, want %q", magic, "GGUF")
	}
	if v := binary.LittleEndian.Uint32(CocoonTiny[4:8]); v != 3 {
		t.Fatalf("GGUF version = %d, want 3", v)
	}
	if n := binary.LittleEndian.Uint64(CocoonTiny[8:16]); n == 0 {
		t.Fatalf("tensor count = 0")
	}
}

func TestName(t *testing.T) {
	if Name != "cocoon-tiny" {
		t.Fatalf("Name = %q", Name)
	}
}
