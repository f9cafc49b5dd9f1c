package tsm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// NoEvidence is how [Description.String] begins where nothing can be produced.
const NoEvidence = "no TEE evidence can be produced here; workers need --simulated-tee for development"

// Description is what TEE interfaces a machine has and which evidence it can
// produce, for `cocoon attest show`. Paths are under [System.Root].
type Description struct {
	ReportDir string   // the configfs-tsm report directory; "" if absent
	Provider  string   // its provider, such as "tdx_guest"; "" if none or unreadable
	Devices   []string // guest devices present: /dev/tdx_guest, /dev/sev-guest
	GPUs      []string // NVIDIA GPU devices present: /dev/nvidia0, ...

	Kind    string // the evidence kind that can be produced (attest.KindTDX, attest.KindSEVSNP); "" if none
	Source  string // the interface [Detect] reads it from ([Producer.Source])
	Problem error  // why nothing can be produced (a [*NoTEEError]); nil if Kind is set
}

// Describe says what this machine can produce; see [System.Describe].
func Describe() *Description { return System{}.Describe() }

// Describe says which TEE interfaces s has and what [System.Detect] would
// produce from them. Like Detect, it creates and removes one configfs-tsm
// entry; it makes no report.
func (s System) Describe() *Description {
	d := new(Description)
	if fi, err := os.Stat(s.path(ReportDir)); err == nil && fi.IsDir() {
		d.ReportDir = s.path(ReportDir)
	}
	for _, g := range guestDevices {
		if _, err := os.Stat(s.path(g.path)); !errors.Is(err, fs.ErrNotExist) {
			d.Devices = append(d.Devices, s.path(g.path))
		}
	}
	d.GPUs, _ = filepath.Glob(s.path(nvidiaDevGlob))
	p, provider, err := s.detect()
	d.Provider = provider
	if err != nil {
		d.Problem = err
		return d
	}
	d.Kind, d.Source = p.Kind(), p.Source()
	return d
}

// String says in a sentence what can be produced, or that nothing can and why.
func (d *Description) String() string {
	var b strings.Builder
	if d.Kind == "" {
		b.WriteString(NoEvidence)
		var e *NoTEEError
		switch {
		case errors.As(d.Problem, &e):
			fmt.Fprintf(&b, ": %s", e.Detail)
			if e.Err != nil {
				fmt.Fprintf(&b, ": %v", e.Err)
			}
		case d.Problem != nil:
			fmt.Fprintf(&b, ": %v", d.Problem)
		}
	} else {
		fmt.Fprintf(&b, "this machine can produce %s evidence, from %s", d.Kind, d.Source)
	}
	if len(d.GPUs) > 0 {
		fmt.Fprintf(&b, "; NVIDIA GPU devices: %s", strings.Join(d.GPUs, ", "))
	}
	return b.String()
}
