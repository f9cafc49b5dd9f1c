// Package tsm produces TEE evidence on real confidential guests: Intel TDX
// quotes and AMD SEV-SNP reports, read from the Linux kernel's configfs-tsm
// interface or, on older kernels, from the TDX and SEV-SNP guest devices.
//
// [Detect] finds what this machine offers and returns an [attest.Producer]
// for it; [Describe] says what it found, for `cocoon attest show`. Where
// nothing can be produced, both say why with a [*NoTEEError], which matches
// [ErrNoTEE].
//
// The evidence is in the format the verifiers of package attest read: for
// [attest.KindTDX] the quote as the kernel returns it (package attest/tdx),
// for [attest.KindSEVSNP] the 1,184-byte report followed by the certificate
// table the host supplied, VCEK or VLEK included where it has one (package
// attest/snp). Where the host supplies no certificates, the report comes
// alone and verifiers need its VCEK from elsewhere, such as AMD's KDS
// through [attest.Evidence.Collateral]; nothing is fetched here.
//
// Configfs-tsm (/sys/kernel/config/tsm/report, Linux 6.7 and later) is read
// through github.com/google/go-configfs-tsm. Every report uses a fresh entry
// whose generation counter is checked after each read, so a report that
// another process changed meanwhile is refused ([ErrConcurrentUse]). The
// guest devices (/dev/tdx_guest, /dev/sev-guest) are used through the client
// packages of github.com/google/go-tdx-guest and go-sev-guest, on Linux only;
// those packages register their own flags on [flag.CommandLine], and
// go-sev-guest spaces its device requests 2 seconds apart. Upstream Linux
// makes TDX quotes only through configfs-tsm: /dev/tdx_guest gives quotes
// only on kernels with Intel's GET_QUOTE ioctl.
//
// Every path is looked up under [System.Root], and configfs-tsm can be
// replaced by any [configfsi.Client], so tests run on a temporary directory
// and go-configfs-tsm's faketsm.
package tsm

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/google/go-configfs-tsm/configfs/configfsi"

	"github.com/cocoon-go/cocoon/attest"
)

// Paths looked at, relative to [System.Root].
const (
	ConfigfsDir    = "/sys/kernel/config"
	ReportDir      = configfsi.TsmPrefix + "/report" // configfs-tsm's report subsystem
	TDXDevice      = "/dev/tdx_guest"
	SEVSNPDevice   = "/dev/sev-guest"
	nvidiaDevGlob  = "/dev/nvidia[0-9]*"
	providerTDX    = "tdx_guest" // the configfs-tsm provider of the Linux tdx-guest driver
	providerSEVSNP = "sev_guest" // the configfs-tsm provider of the Linux sev-guest driver
)

// MaxEvidenceSize bounds what Produce reads from the kernel and returns: a
// TDX quote with its PCK chain is about 5 KiB, an SEV-SNP report with its
// certificate table under 8 KiB, and the verifiers accept at most 64 KiB.
const MaxEvidenceSize = 64 << 10

var (
	// ErrNoTEE means this machine cannot produce TEE evidence. It is matched
	// by every [*NoTEEError].
	ErrNoTEE = errors.New("tsm: no TEE evidence can be produced here")

	// ErrConcurrentUse means the configfs-tsm report entry was written by
	// someone else while a report was being read from it, so the report may
	// not carry the report_data asked for. The error also wraps
	// go-configfs-tsm's *report.GenerationErr.
	ErrConcurrentUse = errors.New("tsm: configfs-tsm report entry changed by another writer")
)

// Reasons a [*NoTEEError] may give.
const (
	ReasonUnsupportedOS       = "unsupported-os"           // not Linux
	ReasonConfigfsNotMounted  = "configfs-not-mounted"     // nothing at /sys/kernel/config
	ReasonNoTSM               = "no-configfs-tsm"          // configfs without tsm/report: kernel older than 6.7, no CONFIG_TSM_REPORTS, or no TEE guest driver
	ReasonNotConfidential     = "not-a-confidential-guest" // configfs-tsm without a provider
	ReasonUnsupportedProvider = "unsupported-provider"     // a provider other than tdx_guest and sev_guest
	ReasonPermission          = "permission-denied"        // present but not usable by this user
)

// NoTEEError says why this machine cannot produce TEE evidence.
type NoTEEError struct {
	Reason string // one of the Reason constants
	Detail string // what was looked at and what was seen
	Err    error  // the underlying error, if any (fs.ErrPermission, fs.ErrNotExist, ...)
}

func (e *NoTEEError) Error() string {
	msg := fmt.Sprintf("tsm: no TEE evidence can be produced here (%s): %s", e.Reason, e.Detail)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is reports whether target is [ErrNoTEE].
func (e *NoTEEError) Is(target error) bool { return target == ErrNoTEE }

// Unwrap returns the underlying error.
func (e *NoTEEError) Unwrap() error { return e.Err }

// System is the machine to look at. The zero value is this machine.
type System struct {
	// Root is prepended to every path looked at ("" is "/"); tests point
	// it at a temporary directory.
	Root string
	// Client, if not nil, is used for configfs-tsm instead of the files
	// under Root (for tests, go-configfs-tsm's faketsm.Client). Its paths
	// begin with /sys/kernel/config/tsm, as configfsi defines.
	Client configfsi.Client
}

// Detect returns a producer for this machine's TEE; see [System.Detect].
func Detect() (*Producer, error) { return System{}.Detect() }

// Detect returns a producer for the TEE that s offers: configfs-tsm if its
// provider is tdx_guest or sev_guest, else a guest device. Where there is
// none, the error is a [*NoTEEError] saying what was looked for and why
// nothing could be used; it matches [ErrNoTEE].
//
// Detect creates and removes one configfs-tsm entry, to read its provider,
// and opens and closes the guest device it picks; it makes no report.
func (s System) Detect() (*Producer, error) {
	p, _, err := s.detect()
	return p, err
}

// detect is Detect, also returning the configfs-tsm provider it saw.
func (s System) detect() (p *Producer, provider string, err error) {
	if s.Root == "" && s.Client == nil && runtime.GOOS != "linux" {
		return nil, "", &NoTEEError{
			Reason: ReasonUnsupportedOS,
			Detail: fmt.Sprintf("TDX and SEV-SNP evidence is read from the Linux kernel; this is %s", runtime.GOOS),
		}
	}
	p, provider, cfgErr := s.detectConfigfs()
	if cfgErr == nil {
		return p, provider, nil
	}
	p, devErr := s.detectDevice()
	if devErr == nil {
		return p, provider, nil
	}
	if devErr.Reason == ReasonPermission && cfgErr.Reason != ReasonPermission {
		return nil, provider, devErr
	}
	if cfgErr.Reason != ReasonUnsupportedProvider {
		cfgErr.Detail += "; " + devErr.Detail
	}
	return nil, provider, cfgErr
}

// path returns p (slash-separated, absolute) under s.Root.
func (s System) path(p string) string {
	if s.Root == "" {
		return filepath.FromSlash(p)
	}
	return filepath.Join(s.Root, filepath.FromSlash(p))
}

// Producer makes TDX quotes or SEV-SNP reports binding report_data. It
// implements [attest.Producer] and is safe for concurrent use; reports are
// made one at a time.
type Producer struct {
	kind    string
	source  string // the interface it reads, for messages
	mu      sync.Mutex
	produce func(reportData [64]byte) ([]byte, error)
}

var _ attest.Producer = (*Producer)(nil)

// Kind returns attest.KindTDX or attest.KindSEVSNP.
func (p *Producer) Kind() string { return p.kind }

// Source says which interface p reads, such as "configfs-tsm
// /sys/kernel/config/tsm/report (provider tdx_guest)" or "/dev/sev-guest".
func (p *Producer) Source() string { return p.source }

// Produce asks the TEE for evidence whose report_data is reportData and
// checks that the evidence parses and carries it.
func (p *Producer) Produce(reportData [64]byte) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	cpu, err := p.produce(reportData)
	if err != nil {
		return nil, fmt.Errorf("tsm: %s report from %s: %w", p.kind, p.source, err)
	}
	return cpu, nil
}

func kindOf(provider string) (string, bool) {
	switch strings.TrimSpace(provider) {
	case providerTDX:
		return attest.KindTDX, true
	case providerSEVSNP:
		return attest.KindSEVSNP, true
	}
	return "", false
}

// permission reports whether err is a permission error.
func permission(err error) bool { return errors.Is(err, fs.ErrPermission) }
