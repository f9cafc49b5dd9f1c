package tsm_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
	"github.com/google/go-configfs-tsm/report"
	"github.com/google/go-sev-guest/abi"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/snp"
	"github.com/cocoon-go/cocoon/attest/tdx"
	"github.com/cocoon-go/cocoon/attest/tsm"
)

func reportData(b byte) [64]byte {
	var rd [64]byte
	for i := range rd {
		rd[i] = b + byte(i)
	}
	return rd
}

func TestDetect(t *testing.T) {
	snpOut, aux, _ := fakeSNP(t)
	for _, tc := range []struct {
		provider *fakeProvider
		kind     string
	}{
		{&fakeProvider{name: "tdx_guest", out: fakeTDXQuote(t)}, attest.KindTDX},
		{&fakeProvider{name: "sev_guest", out: snpOut, aux: aux}, attest.KindSEVSNP},
	} {
		t.Run(tc.provider.name, func(t *testing.T) {
			p, err := tsm.System{Client: tc.provider.client()}.Detect()
			if err != nil {
				t.Fatal(err)
			}
			if p.Kind() != tc.kind {
				t.Errorf("Kind() = %q, want %q", p.Kind(), tc.kind)
			}
			if want := "configfs-tsm /sys/kernel/config/tsm/report (provider " + tc.provider.name + ")"; p.Source() != want {
				t.Errorf("Source() = %q, want %q", p.Source(), want)
			}
		})
	}
}

func TestProduceTDX(t *testing.T) {
	fake := &fakeProvider{name: "tdx_guest", out: fakeTDXQuote(t)}
	p, err := tsm.System{Client: fake.client()}.Detect()
	if err != nil {
		t.Fatal(err)
	}
	rd := reportData(1)
	cpu, err := p.Produce(rd)
	if err != nil {
		t.Fatal(err)
	}
	if want := fake.out(rd[:]); !bytes.Equal(cpu, want) {
		t.Errorf("Produce returned %d bytes, not the provider's %d-byte quote", len(cpu), len(want))
	}
	q, err := tdx.Parse(cpu)
	if err != nil {
		t.Fatal(err)
	}
	if q.ReportData != rd {
		t.Errorf("quote report_data = %x, want %x", q.ReportData, rd)
	}
	if len(fake.privlevels) != 0 {
		t.Errorf("privlevel written for TDX, whose Linux provider has none: %q", fake.privlevels)
	}
}

func TestProduceSEVSNP(t *testing.T) {
	out, aux, vcek := fakeSNP(t)
	fake := &fakeProvider{name: "sev_guest", out: out, aux: aux}
	p, err := tsm.System{Client: fake.client()}.Detect()
	if err != nil {
		t.Fatal(err)
	}
	// The sample report's own report_data, so that its signature verifies.
	rd := [64]byte{1, 2, 3, 4, 5}
	cpu, err := p.Produce(rd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cpu[:abi.ReportSize], out(rd[:])) {
		t.Error("Produce does not begin with the provider's report")
	}
	if len(cpu) >= abi.ReportSize+len(aux) {
		t.Errorf("Produce returned %d bytes: the auxblob's padding was kept", len(cpu))
	}
	r, err := snp.Parse(cpu)
	if err != nil {
		t.Fatal(err)
	}
	if r.ReportData != rd {
		t.Errorf("report_data = %x, want %x", r.ReportData, rd)
	}
	if !bytes.Equal(r.Endorsement(), vcek) {
		t.Fatal("the VCEK certificate did not come with the report")
	}
	if err := snp.VerifySignature(r, nil, nil, time.Date(2026, time.January, 20, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Errorf("VerifySignature: %v", err)
	}

	// Any other report_data is passed through as well.
	rd = reportData(7)
	if cpu, err = p.Produce(rd); err != nil {
		t.Fatal(err)
	}
	if r, err = snp.Parse(cpu); err != nil || r.ReportData != rd {
		t.Errorf("snp.Parse: report_data %x, %v; want %x", r.ReportData, err, rd)
	}
	// Reports are asked at VMPL 0, the floor of this guest.
	if len(fake.privlevels) != 2 || strings.TrimSpace(fake.privlevels[0]) != "0" {
		t.Errorf("privlevel written: %q, want 0 for each report", fake.privlevels)
	}
}

func TestProduceSEVSNPWithoutCertificates(t *testing.T) {
	out, _, _ := fakeSNP(t)
	p, err := tsm.System{Client: (&fakeProvider{name: "sev_guest", out: out}).client()}.Detect()
	if err != nil {
		t.Fatal(err)
	}
	cpu, err := p.Produce(reportData(3))
	if err != nil {
		t.Fatal(err)
	}
	if len(cpu) != abi.ReportSize {
		t.Errorf("Produce returned %d bytes, want the bare %d-byte report", len(cpu), abi.ReportSize)
	}
}

func TestProduceRace(t *testing.T) {
	fake := &fakeProvider{name: "tdx_guest", out: fakeTDXQuote(t)}
	p, err := tsm.System{Client: interferingClient{fake.client()}}.Detect()
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Produce(reportData(1))
	if !errors.Is(err, tsm.ErrConcurrentUse) {
		t.Fatalf("Produce with another writer: %v, want ErrConcurrentUse", err)
	}
	var genErr *report.GenerationErr
	if !errors.As(err, &genErr) {
		t.Errorf("error %v does not carry the *report.GenerationErr", err)
	}
	t.Log(err)
}

func TestProduceRefusesWrongReportData(t *testing.T) {
	quote := fakeTDXQuote(t)
	stale := func([]byte) []byte { return quote(make([]byte, 64)) } // ignores inblob
	p, err := tsm.System{Client: (&fakeProvider{name: "tdx_guest", out: stale}).client()}.Detect()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Produce(reportData(1)); err == nil || !strings.Contains(err.Error(), "report_data") {
		t.Errorf("Produce of a quote for other report_data: %v, want a report_data error", err)
	}
}

func TestProduceRefusesOversized(t *testing.T) {
	out, _, _ := fakeSNP(t)
	big := make([]byte, tsm.MaxEvidenceSize)
	p, err := tsm.System{Client: (&fakeProvider{name: "sev_guest", out: out, aux: big}).client()}.Detect()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Produce(reportData(1)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("Produce of %d bytes: %v, want a size error", len(big), err)
	}
}

func TestAttestEndToEnd(t *testing.T) {
	fake := &fakeProvider{name: "tdx_guest", out: fakeTDXQuote(t)}
	p, err := tsm.System{Client: fake.client()}.Detect()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	b := &attest.Bundle{
		HPKEKey:    []byte{0x00, 0x20, 1, 2, 3},
		SigningKey: make(ed25519.PublicKey, ed25519.PublicKeySize),
		Created:    now.Unix(),
		Expires:    now.Add(time.Hour).Unix(),
		Config:     attest.RuntimeConfig{Engine: attest.EngineEmbedded, KEM: 0x0020},
	}
	ev, err := attest.Attest(p, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	rd := attest.ReportData(b.Hash())
	if ev.Kind != attest.KindTDX || !bytes.Equal(ev.CPU, fake.out(rd[:])) {
		t.Errorf("evidence of kind %q with %d CPU bytes, want the fake's tdx quote", ev.Kind, len(ev.CPU))
	}
	if q := mustParseQuote(t, ev.CPU); q.ReportData != rd {
		t.Errorf("quote report_data %x, want %x", q.ReportData, rd)
	}
}

func mustParseQuote(t *testing.T, b []byte) *tdx.Quote {
	t.Helper()
	q, err := tdx.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, name, data string) {
	t.Helper()
	mkdir(t, filepath.Dir(name))
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func noTEE(t *testing.T, err error, reason string) *tsm.NoTEEError {
	t.Helper()
	if !errors.Is(err, tsm.ErrNoTEE) {
		t.Fatalf("error %v does not match ErrNoTEE", err)
	}
	var e *tsm.NoTEEError
	if !errors.As(err, &e) {
		t.Fatalf("error %v is not a *NoTEEError", err)
	}
	if e.Reason != reason {
		t.Errorf("reason %q, want %q (%v)", e.Reason, reason, err)
	}
	return e
}

func TestDetectNoTEE(t *testing.T) {
	t.Run("empty root", func(t *testing.T) {
		root := t.TempDir()
		_, err := tsm.System{Root: root}.Detect()
		noTEE(t, err, tsm.ReasonConfigfsNotMounted)
		for _, want := range []string{"/sys/kernel/config/tsm/report", "configfs is not mounted", "/dev/tdx_guest", "/dev/sev-guest"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("message %q does not say %q", err, want)
			}
		}
	})
	t.Run("configfs mounted without tsm", func(t *testing.T) {
		root := t.TempDir()
		mkdir(t, filepath.Join(root, "sys/kernel/config"))
		write(t, filepath.Join(root, "proc/self/mounts"), "sysfs /sys sysfs rw 0 0\nconfigfs /sys/kernel/config configfs rw 0 0\n")
		_, err := tsm.System{Root: root}.Detect()
		noTEE(t, err, tsm.ReasonNoTSM)
		if !strings.Contains(err.Error(), "not a confidential guest") {
			t.Errorf("message %q does not say it is not a confidential guest", err)
		}
	})
	t.Run("configfs not in the mount table", func(t *testing.T) {
		root := t.TempDir()
		mkdir(t, filepath.Join(root, "sys/kernel/config"))
		write(t, filepath.Join(root, "proc/self/mounts"), "sysfs /sys sysfs rw 0 0\n")
		_, err := tsm.System{Root: root}.Detect()
		noTEE(t, err, tsm.ReasonConfigfsNotMounted)
	})
	t.Run("tsm without provider", func(t *testing.T) {
		root := t.TempDir()
		mkdir(t, filepath.Join(root, "sys/kernel/config/tsm/report"))
		_, err := tsm.System{Root: root}.Detect()
		noTEE(t, err, tsm.ReasonNotConfidential)
		if entries, _ := os.ReadDir(filepath.Join(root, "sys/kernel/config/tsm/report")); len(entries) != 0 {
			t.Errorf("Detect left %d entries behind", len(entries))
		}
	})
	t.Run("ENXIO provider", func(t *testing.T) {
		c := failingClient{Client: (&fakeProvider{name: "tdx_guest"}).client(), providerErr: syscall.ENXIO}
		_, err := tsm.System{Client: c, Root: t.TempDir()}.Detect()
		noTEE(t, err, tsm.ReasonNotConfidential)
	})
	t.Run("permission denied", func(t *testing.T) {
		c := failingClient{Client: (&fakeProvider{name: "tdx_guest"}).client(), mkdirErr: &fs.PathError{Op: "mkdir", Path: "x", Err: fs.ErrPermission}}
		_, err := tsm.System{Client: c, Root: t.TempDir()}.Detect()
		noTEE(t, err, tsm.ReasonPermission)
		if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "run as root") {
			t.Errorf("%v: want fs.ErrPermission and advice to run as root", err)
		}
	})
	t.Run("unsupported provider", func(t *testing.T) {
		_, err := tsm.System{Client: &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": faketsm.ReportV7(0)}}, Root: t.TempDir()}.Detect()
		e := noTEE(t, err, tsm.ReasonUnsupportedProvider)
		if !strings.Contains(e.Detail, `"fake"`) {
			t.Errorf("detail %q does not name the provider", e.Detail)
		}
	})
}

func TestDetectDevice(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "dev/sev-guest"), "")
	p, err := tsm.System{Root: root}.Detect()
	if err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(root, "dev/sev-guest")
	if p.Kind() != attest.KindSEVSNP || p.Source() != dev {
		t.Errorf("Detect: %s from %s, want %s from %s", p.Kind(), p.Source(), attest.KindSEVSNP, dev)
	}
	// A plain file is no device: the request fails, naming it.
	if _, err := p.Produce(reportData(1)); err == nil || !strings.Contains(err.Error(), dev) {
		t.Errorf("Produce from a plain file: %v, want an error naming %s", err, dev)
	}
}

func TestDescribe(t *testing.T) {
	t.Run("nothing", func(t *testing.T) {
		d := tsm.System{Root: t.TempDir()}.Describe()
		if d.Kind != "" || !errors.Is(d.Problem, tsm.ErrNoTEE) {
			t.Errorf("Describe on an empty root: kind %q, problem %v", d.Kind, d.Problem)
		}
		if s := d.String(); !strings.HasPrefix(s, "no TEE evidence can be produced here; workers need --simulated-tee for development") {
			t.Errorf("String() = %q", s)
		}
		t.Log(d)
	})
	t.Run("tdx", func(t *testing.T) {
		root := t.TempDir()
		mkdir(t, filepath.Join(root, "sys/kernel/config/tsm/report"))
		write(t, filepath.Join(root, "dev/tdx_guest"), "")
		write(t, filepath.Join(root, "dev/nvidia0"), "")
		write(t, filepath.Join(root, "dev/nvidiactl"), "")
		d := tsm.System{Root: root, Client: (&fakeProvider{name: "tdx_guest", out: fakeTDXQuote(t)}).client()}.Describe()
		if d.Kind != attest.KindTDX || d.Provider != "tdx_guest" || d.Problem != nil {
			t.Errorf("Describe: kind %q, provider %q, problem %v", d.Kind, d.Provider, d.Problem)
		}
		if d.ReportDir != filepath.Join(root, "sys/kernel/config/tsm/report") {
			t.Errorf("ReportDir = %q", d.ReportDir)
		}
		if len(d.Devices) != 1 || d.Devices[0] != filepath.Join(root, "dev/tdx_guest") {
			t.Errorf("Devices = %q", d.Devices)
		}
		if len(d.GPUs) != 1 || d.GPUs[0] != filepath.Join(root, "dev/nvidia0") {
			t.Errorf("GPUs = %q", d.GPUs)
		}
		if s := d.String(); !strings.HasPrefix(s, "this machine can produce tdx evidence") || !strings.Contains(s, "nvidia0") {
			t.Errorf("String() = %q", s)
		}
		t.Log(d)
	})
}
