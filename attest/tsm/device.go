package tsm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/cocoon-go/cocoon/attest"
)

// guestDevices are the TEE guest devices of kernels older than configfs-tsm,
// in the order Detect tries them.
var guestDevices = []struct{ kind, path string }{
	{attest.KindTDX, TDXDevice},
	{attest.KindSEVSNP, SEVSNPDevice},
}

// detectDevice returns a producer reading the first guest device that s has
// and this user can open.
func (s System) detectDevice() (*Producer, *NoTEEError) {
	for _, d := range guestDevices {
		dev := s.path(d.path)
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case permission(err):
			return nil, &NoTEEError{Reason: ReasonPermission, Detail: fmt.Sprintf("cannot open the guest device %s (run as root)", dev), Err: err}
		case err != nil:
			return nil, &NoTEEError{Reason: ReasonNotConfidential, Detail: fmt.Sprintf("cannot open the guest device %s", dev), Err: err}
		}
		f.Close()
		return &Producer{kind: d.kind, source: dev, produce: deviceProducer(d.kind, dev)}, nil
	}
	return nil, &NoTEEError{
		Reason: ReasonNotConfidential,
		Detail: fmt.Sprintf("no guest device (%s, %s) either", s.path(TDXDevice), s.path(SEVSNPDevice)),
	}
}
