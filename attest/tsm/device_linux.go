package tsm

import (
	"fmt"
	"io/fs"
	"os"

	sevclient "github.com/google/go-sev-guest/client"
	tdxclient "github.com/google/go-tdx-guest/client"

	"github.com/cocoon-go/cocoon/attest"
)

// deviceProducer returns a function making reports of kind through the
// guest device at dev, opened afresh for each report.
func deviceProducer(kind, dev string) func([64]byte) ([]byte, error) {
	if kind == attest.KindTDX {
		return func(reportData [64]byte) ([]byte, error) {
			if err := checkCharDevice(dev); err != nil {
				return nil, err
			}
			d := new(tdxclient.LinuxDevice)
			if err := d.Open(dev); err != nil {
				return nil, err
			}
			defer d.Close()
			// Only kernels with Intel's GET_QUOTE ioctl (not upstream Linux,
			// which has configfs-tsm instead) make quotes here.
			quote, err := tdxclient.GetRawQuote(d, reportData)
			if err != nil {
				return nil, err
			}
			return checkTDX(quote, reportData)
		}
	}
	return func(reportData [64]byte) ([]byte, error) {
		if err := checkCharDevice(dev); err != nil {
			return nil, err
		}
		d := new(sevclient.LinuxDevice)
		if err := d.Open(dev); err != nil {
			return nil, err
		}
		defer d.Close()
		report, certs, err := sevclient.GetRawExtendedReportAtVmpl(d, reportData, 0)
		if err != nil {
			// Hosts that supply no certificates may refuse extended reports.
			certs = nil
			if report, err = sevclient.GetRawReportAtVmpl(d, reportData, 0); err != nil {
				return nil, err
			}
		}
		return assembleSEVSNP(report, certs, reportData)
	}
}

// checkCharDevice refuses anything but a character device, before an ioctl
// that go-sev-guest would retry, throttled, for seconds.
func checkCharDevice(dev string) error {
	fi, err := os.Stat(dev)
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return fmt.Errorf("%s is not a character device", dev)
	}
	return nil
}
