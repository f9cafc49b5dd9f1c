package tsm_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
)

// Offsets of report_data: in a TDX v4 quote, after the 48-byte header and
// 520 bytes of TD report body; in an SEV-SNP report, at 0x50.
const (
	tdxReportDataOffset = 48 + 520
	snpReportDataOffset = 0x50
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withReportData returns a copy of report with reportData at offset, as a
// TEE would make it (the signature no longer verifies, but it parses).
func withReportData(report []byte, offset int, reportData []byte) []byte {
	out := bytes.Clone(report)
	copy(out[offset:offset+64], reportData)
	return out
}

// fakeTDXQuote is the real quote of ../tdx/testdata with reportData in it.
func fakeTDXQuote(t *testing.T) func(inblob []byte) []byte {
	quote := readFile(t, "../tdx/testdata/tdx-2026-01/quote.bin")
	return func(inblob []byte) []byte { return withReportData(quote, tdxReportDataOffset, inblob) }
}

// fakeSNP returns the real report of ../snp/testdata with reportData in it,
// and a certificate table holding its VCEK followed by zero padding, as the
// kernel's auxblob may be.
func fakeSNP(t *testing.T) (out func(inblob []byte) []byte, aux, vcek []byte) {
	report := readFile(t, "../snp/testdata/attestation.bin")
	vcek = readFile(t, "../snp/testdata/vcek.der")
	table := abi.CertsFromProto(&spb.CertificateChain{VcekCert: vcek}).Marshal()
	aux = append(table, make([]byte, 4096)...)
	return func(inblob []byte) []byte { return withReportData(report, snpReportDataOffset, inblob) }, aux, vcek
}

// fakeProvider is a configfs-tsm report subsystem, on go-configfs-tsm's
// faketsm, whose provider is name and whose outblob is out(inblob).
type fakeProvider struct {
	name string
	out  func(inblob []byte) []byte
	aux  []byte

	mu         sync.Mutex
	privlevels []string // every privlevel written
}

func (f *fakeProvider) client() *faketsm.Client {
	sub := &faketsm.ReportSubsystem{
		MakeEntry: func() *faketsm.ReportEntry {
			return &faketsm.ReportEntry{InAttrs: map[string]*faketsm.ReportAttributeState{
				"inblob":    {},
				"privlevel": {Value: []byte("0\n")},
			}}
		},
		CheckInAttr: func(_ *faketsm.ReportEntry, attr string, contents []byte) error {
			switch attr {
			case "inblob":
				if len(contents) > 64 {
					return syscall.EINVAL
				}
			case "privlevel":
				f.mu.Lock()
				f.privlevels = append(f.privlevels, string(contents))
				f.mu.Unlock()
			default:
				return fmt.Errorf("unwritable attribute %q", attr)
			}
			return nil
		},
		ReadAttr: func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
			switch attr {
			case "provider":
				return []byte(f.name + "\n"), nil
			case "privlevel_floor":
				return []byte("0\n"), nil
			case "auxblob":
				return f.aux, nil
			case "outblob":
				return f.out(e.InAttrs["inblob"].Value), nil
			}
			return nil, os.ErrNotExist
		},
		Random: rand.Reader,
	}
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}
}

// interferingClient writes another inblob into an entry just before its
// outblob is read, as a second user of the same entry would.
type interferingClient struct{ configfsi.Client }

func (c interferingClient) ReadFile(name string) ([]byte, error) {
	if path.Base(name) == "outblob" {
		other := bytes.Repeat([]byte{0xee}, 64)
		if err := c.Client.WriteFile(path.Join(path.Dir(name), "inblob"), other); err != nil {
			return nil, err
		}
	}
	return c.Client.ReadFile(name)
}

// failingClient fails to create entries with err, or answers reads of
// provider with it.
type failingClient struct {
	configfsi.Client
	mkdirErr, providerErr error
}

func (c failingClient) MkdirTemp(dir, pattern string) (string, error) {
	if c.mkdirErr != nil {
		return "", c.mkdirErr
	}
	return c.Client.MkdirTemp(dir, pattern)
}

func (c failingClient) ReadFile(name string) ([]byte, error) {
	if c.providerErr != nil && strings.HasSuffix(name, "/provider") {
		return nil, c.providerErr
	}
	return c.Client.ReadFile(name)
}
