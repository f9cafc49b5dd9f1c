package tsm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/report"
	"github.com/google/go-sev-guest/abi"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/snp"
	"github.com/cocoon-go/cocoon/attest/tdx"
)

// detectConfigfs returns a producer reading configfs-tsm and its provider,
// or why there is none.
func (s System) detectConfigfs() (*Producer, string, *NoTEEError) {
	client, where := s.Client, ReportDir
	if client == nil {
		if err := s.checkReportDir(); err != nil {
			return nil, "", err
		}
		client, where = &rootedClient{root: s.Root}, s.path(ReportDir)
	}
	provider, floor, err := probe(client, where)
	if err != nil {
		return nil, "", err
	}
	kind, ok := kindOf(provider)
	if !ok {
		return nil, provider, &NoTEEError{
			Reason: ReasonUnsupportedProvider,
			Detail: fmt.Sprintf("configfs-tsm %s has provider %q; evidence is produced for %s (TDX) and %s (SEV-SNP)", where, provider, providerTDX, providerSEVSNP),
		}
	}
	return &Producer{
		kind:    kind,
		source:  fmt.Sprintf("configfs-tsm %s (provider %s)", where, provider),
		produce: configfsProducer(client, provider, kind, floor),
	}, provider, nil
}

// checkReportDir says, as a *NoTEEError, why s has no configfs-tsm report
// directory, or returns nil if it has one.
func (s System) checkReportDir() *NoTEEError {
	dir := s.path(ReportDir)
	fi, err := os.Stat(dir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return &NoTEEError{Reason: ReasonNoTSM, Detail: fmt.Sprintf("%s is not a directory", dir)}
	case permission(err):
		return &NoTEEError{Reason: ReasonPermission, Detail: fmt.Sprintf("cannot look at configfs-tsm %s (run as root)", dir), Err: err}
	}
	cfg := s.path(ConfigfsDir)
	entries, err := os.ReadDir(cfg)
	if permission(err) {
		return &NoTEEError{Reason: ReasonPermission, Detail: fmt.Sprintf("cannot list %s (run as root)", cfg), Err: err}
	}
	mounted, known := s.configfsMounted()
	if known && !mounted || !known && len(entries) == 0 {
		return &NoTEEError{
			Reason: ReasonConfigfsNotMounted,
			Detail: fmt.Sprintf("looked for configfs-tsm at %s, but configfs is not mounted at %s (mount -t configfs none %s)", dir, cfg, ConfigfsDir),
		}
	}
	return &NoTEEError{
		Reason: ReasonNoTSM,
		Detail: fmt.Sprintf("configfs is mounted at %s but has no tsm/report: the kernel is older than 6.7, lacks CONFIG_TSM_REPORTS, "+
			"or has no TEE guest driver (tdx-guest, sev-guest) loaded, as on a machine that is not a confidential guest", cfg),
	}
}

// configfsMounted reads the mount table to say whether configfs is mounted
// at ConfigfsDir; known is false if the table cannot be read.
func (s System) configfsMounted() (mounted, known bool) {
	f, err := os.Open(s.path("/proc/self/mounts"))
	if err != nil {
		return false, false
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 1<<20))
	for sc.Scan() {
		// device mountpoint fstype options ...
		if f := strings.Fields(sc.Text()); len(f) >= 3 && f[1] == ConfigfsDir && f[2] == "configfs" {
			return true, true
		}
	}
	return false, sc.Err() == nil
}

// probe creates an entry in the report directory to read its provider and
// privlevel_floor, and removes it.
func probe(client configfsi.Client, where string) (provider string, floor uint, _ *NoTEEError) {
	entry, err := client.MkdirTemp(ReportDir, "cocoon-probe-")
	if permission(err) {
		return "", 0, &NoTEEError{Reason: ReasonPermission, Detail: fmt.Sprintf("cannot create a report entry in configfs-tsm %s (run as root)", where), Err: err}
	}
	if err != nil {
		return "", 0, &NoTEEError{Reason: ReasonNoTSM, Detail: fmt.Sprintf("cannot create a report entry in configfs-tsm %s", where), Err: err}
	}
	defer client.RemoveAll(entry)
	// Write report_data first, as a report request would: the kernel
	// answers reads at once, but go-configfs-tsm's faketsm only after a
	// write. Nothing is generated until outblob is read.
	if err := client.WriteFile(path.Join(entry, "inblob"), make([]byte, 64)); permission(err) {
		return "", 0, &NoTEEError{Reason: ReasonPermission, Detail: fmt.Sprintf("cannot write to a report entry of configfs-tsm %s (run as root)", where), Err: err}
	}
	b, err := client.ReadFile(path.Join(entry, "provider"))
	provider = strings.TrimSpace(string(b))
	switch {
	case permission(err):
		return "", 0, &NoTEEError{Reason: ReasonPermission, Detail: fmt.Sprintf("cannot read the provider of configfs-tsm %s (run as root)", where), Err: err}
	case err == nil && provider != "":
	case err == nil, errors.Is(err, syscall.ENXIO), errors.Is(err, syscall.ENODEV), errors.Is(err, os.ErrNotExist):
		// The kernel answers ENXIO while no TEE driver is registered.
		return "", 0, &NoTEEError{
			Reason: ReasonNotConfidential,
			Detail: fmt.Sprintf("configfs-tsm %s has no provider: no TEE guest driver (tdx-guest, sev-guest) is registered, so this is not a confidential guest", where),
			Err:    err,
		}
	default:
		return "", 0, &NoTEEError{Reason: ReasonNoTSM, Detail: fmt.Sprintf("cannot read the provider of configfs-tsm %s", where), Err: err}
	}
	// privlevel_floor is above 0 where the guest runs under a more privileged
	// layer, such as an SVSM at VMPL 0; reports must be asked at it or above.
	if b, err := client.ReadFile(path.Join(entry, "privlevel_floor")); err == nil {
		if v, err := configfsi.Kstrtouint(b, 10, 32); err == nil {
			floor = uint(v)
		}
	}
	return provider, floor, nil
}

// configfsProducer returns a function making reports of kind through client,
// one fresh entry each, at privilege level floor (0 unless the guest runs
// above a more privileged layer), from provider.
func configfsProducer(client configfsi.Client, provider, kind string, floor uint) func([64]byte) ([]byte, error) {
	return func(reportData [64]byte) ([]byte, error) {
		req := &report.Request{InBlob: reportData[:], GetAuxBlob: kind == attest.KindSEVSNP}
		if kind == attest.KindSEVSNP {
			// Only SEV-SNP has privilege levels (VMPLs); Linux hides the
			// privlevel attribute from TDX, where writing it would fail.
			req.Privilege = &report.Privilege{Level: floor}
		}
		resp, err := report.Get(client, req)
		var genErr *report.GenerationErr
		if errors.As(err, &genErr) {
			return nil, fmt.Errorf("%w: %w", ErrConcurrentUse, genErr)
		}
		if err != nil {
			return nil, err
		}
		if got := strings.TrimSpace(resp.Provider); got != provider {
			return nil, fmt.Errorf("report made by provider %q, not %q", got, provider)
		}
		if kind == attest.KindTDX {
			return checkTDX(resp.OutBlob, reportData)
		}
		return assembleSEVSNP(resp.OutBlob, resp.AuxBlob, reportData)
	}
}

// checkTDX checks that quote parses and carries reportData.
func checkTDX(quote []byte, reportData [64]byte) ([]byte, error) {
	if len(quote) > MaxEvidenceSize {
		return nil, fmt.Errorf("quote of %d bytes, more than %d", len(quote), MaxEvidenceSize)
	}
	q, err := tdx.Parse(quote)
	if err != nil {
		return nil, err
	}
	if q.ReportData != reportData {
		return nil, fmt.Errorf("quote carries report_data %x, asked for %x", q.ReportData[:8], reportData[:8])
	}
	return quote, nil
}

// assembleSEVSNP returns the report followed by its certificate table, the
// layout snp.Parse reads, and checks that it carries reportData. The table
// is re-encoded without the padding the kernel may leave after it.
func assembleSEVSNP(outblob, auxblob []byte, reportData [64]byte) ([]byte, error) {
	if len(outblob) != abi.ReportSize {
		return nil, fmt.Errorf("report of %d bytes, want %d", len(outblob), abi.ReportSize)
	}
	if len(outblob)+len(auxblob) > MaxEvidenceSize {
		return nil, fmt.Errorf("report and certificate table of %d bytes, more than %d", len(outblob)+len(auxblob), MaxEvidenceSize)
	}
	table := new(abi.CertTable)
	if err := table.Unmarshal(auxblob); err != nil {
		return nil, fmt.Errorf("certificate table (auxblob): %w", err)
	}
	cpu := append(bytes.Clone(outblob), table.Marshal()...)
	r, err := snp.Parse(cpu)
	if err != nil {
		return nil, err
	}
	if r.ReportData != reportData {
		return nil, fmt.Errorf("report carries report_data %x, asked for %x", r.ReportData[:8], reportData[:8])
	}
	return cpu, nil
}

// rootedClient is a configfsi.Client for the kernel's configfs-tsm, under
// root, reading at most MaxEvidenceSize bytes from any attribute. Like
// go-configfs-tsm's linuxtsm, it removes entries with rmdir: configfs
// removes their attributes itself.
type rootedClient struct{ root string }

func (c *rootedClient) host(p string) string {
	return filepath.Join(c.root, filepath.FromSlash(path.Clean(p)))
}

func (c *rootedClient) MkdirTemp(dir, pattern string) (string, error) {
	d, err := os.MkdirTemp(c.host(dir), pattern)
	if err != nil {
		return "", err
	}
	return path.Join(dir, filepath.Base(d)), nil
}

func (c *rootedClient) ReadFile(name string) ([]byte, error) {
	f, err := os.Open(c.host(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxEvidenceSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxEvidenceSize {
		return nil, fmt.Errorf("%s: more than %d bytes", name, MaxEvidenceSize)
	}
	return b, nil
}

func (c *rootedClient) ReadDir(dir string) ([]os.DirEntry, error) { return os.ReadDir(c.host(dir)) }

func (c *rootedClient) WriteFile(name string, contents []byte) error {
	// configfs binary attributes take the whole value at close.
	f, err := os.OpenFile(c.host(name), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(contents)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (c *rootedClient) RemoveAll(p string) error { return os.Remove(c.host(p)) }
