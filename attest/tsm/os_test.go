package tsm_test

import (
	"runtime"
	"testing"

	"github.com/cocoon-go/cocoon/attest/tsm"
)

func TestDetectOtherOS(t *testing.T) {
	if runtime.GOOS == "linux" {
		t.Skip("on Linux, Detect looks at the machine")
	}
	_, err := tsm.Detect()
	noTEE(t, err, tsm.ReasonUnsupportedOS)
}
