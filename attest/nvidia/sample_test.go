package nvidia

import (
	"os"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestRealNRASResponse checks what can be checked offline of a real NRAS
// response (testdata/nras-response-h100.json; see testdata/README.md): the
// submods digest of its detached token, its nonce and every per-GPU rule.
// Its signature cannot be checked here, as its key has rotated out of
// NRAS's JWKS.
func TestRealNRASResponse(t *testing.T) {
	body, err := os.ReadFile("testdata/nras-response-h100.json")
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseNRASResponse(body)
	if err != nil {
		t.Fatalf("ParseNRASResponse: %v", err)
	}
	unverified := func(raw string) map[string]any {
		c := jwt.MapClaims{}
		tok, _, err := jwt.NewParser().ParseUnverified(raw, c)
		if err != nil {
			t.Fatalf("ParseUnverified: %v", err)
		}
		if tok.Method.Alg() != "ES384" || tok.Header["kid"] == "" {
			t.Errorf("header = %v", tok.Header)
		}
		return c
	}
	tokens := &Tokens{Overall: unverified(e.Overall)}
	if err := checkSubmods(tokens.Overall, e.GPUs); err != nil {
		t.Errorf("checkSubmods: %v", err)
	}
	for _, g := range e.GPUs {
		tokens.GPUs = append(tokens.GPUs, GPUToken{Name: g.Name, Claims: unverified(g.Token)})
	}
	nonce := [32]byte{0x4d, 0x6e, 0x0c, 0x49, 0x32, 0x1d, 0x22, 0xda, 0xa9, 0xbd, 0x7f, 0xc2, 0x20, 0x5e, 0x38, 0x1f,
		0x95, 0x06, 0xc2, 0x0e, 0x77, 0xdd, 0x50, 0x82, 0xec, 0xf5, 0xe1, 0x24, 0xec, 0x0f, 0x46, 0x18}
	if err := CheckNonce(tokens, nonce); err != nil {
		t.Errorf("CheckNonce: %v", err)
	}
	gpus, err := CheckGPUs(tokens)
	if err != nil {
		t.Fatalf("CheckGPUs: %v", err)
	}
	if len(gpus) != 1 || gpus[0].Arch != "HOPPER" || gpus[0].Model != "GH100 A01 GSP BROM" ||
		gpus[0].Driver != "570.133.20" || gpus[0].VBIOS != "96.00.CF.00.02" || gpus[0].ID != "642960189298007511250958030500749152730221142468" {
		t.Errorf("GPUs = %+v", gpus)
	}
}
