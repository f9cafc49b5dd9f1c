package serve

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestPprofLoopbackOnly(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if _, err := Pprof("0.0.0.0:0", false, log); !errors.Is(err, ErrRemotePprof) {
		t.Fatalf("pprof on 0.0.0.0 without leave: %v, want ErrRemotePprof", err)
	}
	ln, err := Pprof("127.0.0.1:0", false, log)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	resp, err := http.Get("http://" + ln.Addr().String() + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "goroutine") {
		t.Fatalf("pprof answered %d: %.200s", resp.StatusCode, b)
	}
	remote, err := Pprof("0.0.0.0:0", true, log)
	if err != nil {
		t.Fatalf("pprof on 0.0.0.0, allowed: %v", err)
	}
	remote.Close()
}
