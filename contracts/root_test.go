package contracts

import (
	"bytes"
	"crypto/sha256"
	"reflect"
	"testing"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

var testParams = Params{
	BasePrice: 1000, WorkerFee: 800,
	PromptMultiplier: 5000, CachedMultiplier: 1000, CompletionMultiplier: 10000,
	MinProxyStake: 100 * ton, MinWorkerStake: 10 * ton,
	ClientCloseDelay: 24 * time.Hour, WorkerCloseDelay: time.Hour,
}

func hashOf(s string) [32]byte { return sha256.Sum256([]byte(s)) }

type rootFixture struct {
	*ledger
	owner, stranger party
	cfg             RootConfig
	addr            *address.Address
}

func newRoot(t *testing.T) *rootFixture {
	t.Helper()
	f := &rootFixture{ledger: newLedger(t), owner: newParty("owner"), stranger: newParty("stranger")}
	proxy := newParty("proxy")
	f.cfg = RootConfig{
		Owner:              f.owner.addr,
		Params:             testParams,
		WorkerMeasurements: [][32]byte{hashOf("worker image")},
		Models:             [][32]byte{hashOf("model a"), hashOf("model b")},
		Proxies:            []Proxy{{Address: proxy.addr, PublicKey: proxy.pub(), Endpoint: "https://proxy.example:8443"}},
	}
	si, err := f.cfg.StateInit()
	if err != nil {
		t.Fatal(err)
	}
	if f.addr, err = f.cfg.Address(); err != nil {
		t.Fatal(err)
	}
	// Deploy with a plain transfer: the root accepts an empty body.
	mustExit(t, "deploy", f.send(f.owner.addr, f.addr, ton, cell.BeginCell().EndCell(), si), 0)
	return f
}

// op sends an owner operation and checks that the rest of its value came back.
func (f *rootFixture) op(what string, body *cell.Cell) {
	f.t.Helper()
	r := f.send(f.owner.addr, f.addr, ton/10, body, nil)
	mustExit(f.t, what, r, 0)
	if len(r.out) != 1 || !r.out[0].DstAddr.Equals(f.owner.addr) {
		f.t.Fatalf("%s: %d out messages", what, len(r.out))
	}
	if op := r.out[0].Body.MustBeginParse().MustLoadUInt(32); op != uint64(OpExcesses) {
		f.t.Fatalf("%s: reply opcode %#x", what, op)
	}
	if got := r.outTo(f.owner.addr); got < ton/10-ton/100 {
		f.t.Fatalf("%s: only %d of %d came back", what, got, ton/10)
	}
}

func (f *rootFixture) allowed(method string, h [32]byte) bool {
	f.t.Helper()
	ok, err := ParseAllowed(f.get(f.addr, method, HashArg(h)))
	if err != nil {
		f.t.Fatal(err)
	}
	return ok
}

func (f *rootFixture) list(method string) [][32]byte {
	f.t.Helper()
	l, err := ParseHashList(f.get(f.addr, method))
	if err != nil {
		f.t.Fatal(err)
	}
	return l
}

func TestRootGetters(t *testing.T) {
	f := newRoot(t)
	owner, err := ParseOwner(f.get(f.addr, GetOwner))
	if err != nil || !owner.Equals(f.owner.addr) {
		t.Fatalf("get_owner = %v, %v", owner, err)
	}
	p, err := ParseParams(f.get(f.addr, GetParams))
	if err != nil || p != testParams {
		t.Fatalf("get_params = %+v, %v", p, err)
	}
	if !f.allowed(IsWorkerMeasurementAllowed, hashOf("worker image")) || f.allowed(IsWorkerMeasurementAllowed, hashOf("other")) {
		t.Fatal("is_worker_measurement_allowed")
	}
	if f.allowed(IsProxyMeasurementAllowed, hashOf("worker image")) {
		t.Fatal("is_proxy_measurement_allowed on an empty list")
	}
	if !f.allowed(IsModelAllowed, hashOf("model b")) || f.allowed(IsModelAllowed, hashOf("model c")) {
		t.Fatal("is_model_allowed")
	}
	if got := f.list(GetModels); len(got) != 2 {
		t.Fatalf("get_models = %x", got)
	}
	if got := f.list(GetProxyMeasurements); len(got) != 0 {
		t.Fatalf("get_proxy_measurements = %x", got)
	}
	proxies, err := ParseProxies(f.get(f.addr, GetProxies))
	if err != nil || len(proxies) != 1 || !reflect.DeepEqual(proxies[0], f.cfg.Proxies[0]) {
		t.Fatalf("get_proxies = %+v, %v", proxies, err)
	}
	want := f.cfg.Proxies[0]
	got, found, err := ParseProxy(want.Address, f.get(f.addr, GetProxy, AddressArg(want.Address)))
	if err != nil || !found || !reflect.DeepEqual(got, want) {
		t.Fatalf("get_proxy = %+v, %v, %v", got, found, err)
	}
	_, found, err = ParseProxy(f.stranger.addr, f.get(f.addr, GetProxy, AddressArg(f.stranger.addr)))
	if err != nil || found {
		t.Fatalf("get_proxy of a stranger: found %v, %v", found, err)
	}

	parsed, err := ParseRootData(f.data(f.addr))
	if err != nil {
		t.Fatal(err)
	}
	if !parsed.Owner.Equals(f.cfg.Owner) || parsed.Params != f.cfg.Params || len(parsed.Models) != 2 ||
		len(parsed.WorkerMeasurements) != 1 || len(parsed.ProxyMeasurements) != 0 || !reflect.DeepEqual(parsed.Proxies, f.cfg.Proxies) {
		t.Fatalf("ParseRootData = %+v", parsed)
	}
}

func TestRootOwnerOperations(t *testing.T) {
	f := newRoot(t)

	p := testParams
	p.BasePrice, p.WorkerCloseDelay = 2000, 2*time.Hour
	body, err := SetParamsBody(1, p)
	if err != nil {
		t.Fatal(err)
	}
	f.op("set params", body)
	if got, err := ParseParams(f.get(f.addr, GetParams)); err != nil || got != p {
		t.Fatalf("params after set: %+v, %v", got, err)
	}

	for _, c := range []struct {
		name, check string
		body        func(uint64, [32]byte, bool) *cell.Cell
	}{
		{"worker measurement", IsWorkerMeasurementAllowed, SetWorkerMeasurementBody},
		{"proxy measurement", IsProxyMeasurementAllowed, SetProxyMeasurementBody},
		{"model", IsModelAllowed, SetModelBody},
	} {
		h := hashOf("new " + c.name)
		f.op("allow "+c.name, c.body(2, h, true))
		if !f.allowed(c.check, h) {
			t.Fatalf("%s not allowed after allow", c.name)
		}
		f.op("allow "+c.name+" again", c.body(3, h, true))
		f.op("disallow "+c.name, c.body(4, h, false))
		if f.allowed(c.check, h) {
			t.Fatalf("%s allowed after disallow", c.name)
		}
		f.op("disallow "+c.name+" again", c.body(5, h, false))
	}
	if got := f.list(GetModels); len(got) != 2 {
		t.Fatalf("models after round trip: %x", got)
	}

	proxy := newParty("proxy 2")
	px := Proxy{Address: proxy.addr, PublicKey: proxy.pub(), Endpoint: "https://" + string(bytes.Repeat([]byte("long-"), 60)) + ".example"}
	body, err = RegisterProxyBody(6, px)
	if err != nil {
		t.Fatal(err)
	}
	f.op("register proxy", body)
	got, found, err := ParseProxy(px.Address, f.get(f.addr, GetProxy, AddressArg(px.Address)))
	if err != nil || !found || !reflect.DeepEqual(got, px) {
		t.Fatalf("registered proxy: %+v, %v, %v", got, found, err)
	}
	px.Endpoint = "https://moved.example"
	body, _ = RegisterProxyBody(7, px)
	f.op("re-register proxy", body)
	if got, _, _ := ParseProxy(px.Address, f.get(f.addr, GetProxy, AddressArg(px.Address))); got.Endpoint != px.Endpoint {
		t.Fatalf("endpoint after re-register: %q", got.Endpoint)
	}
	body, _ = RemoveProxyBody(8, px.Address)
	f.op("remove proxy", body)
	if _, found, _ := ParseProxy(px.Address, f.get(f.addr, GetProxy, AddressArg(px.Address))); found {
		t.Fatal("proxy still registered after remove")
	}
	body, _ = RemoveProxyBody(9, px.Address)
	f.mustRefuse("remove an unknown proxy", f.owner, body, ExitUnknownProxy)

	newOwner := newParty("new owner")
	body, _ = SetOwnerBody(10, newOwner.addr)
	f.op("set owner", body)
	if owner, _ := ParseOwner(f.get(f.addr, GetOwner)); !owner.Equals(newOwner.addr) {
		t.Fatalf("owner after set: %v", owner)
	}
	f.mustRefuse("the old owner after handing over", f.owner, SetModelBody(11, hashOf("x"), true), ExitNotOwner)
	f.owner = newOwner
	f.op("the new owner", SetModelBody(12, hashOf("x"), true))
}

func (f *rootFixture) mustRefuse(what string, from party, body *cell.Cell, want int64) {
	f.t.Helper()
	before := f.data(f.addr)
	r := f.send(from.addr, f.addr, ton/10, body, nil)
	if r.exit != want || !r.aborted {
		f.t.Fatalf("%s: exit code %d (aborted %v), want refusal with %d", what, r.exit, r.aborted, want)
	}
	if !bytes.Equal(f.data(f.addr).Hash(), before.Hash()) {
		f.t.Fatalf("%s: refused message changed the root's data", what)
	}
}

func TestRootRefusesNonOwner(t *testing.T) {
	f := newRoot(t)
	params, _ := SetParamsBody(1, Params{})
	owner, _ := SetOwnerBody(1, f.stranger.addr)
	stranger := newParty("stranger proxy")
	register, _ := RegisterProxyBody(1, Proxy{Address: stranger.addr, PublicKey: stranger.pub(), Endpoint: "x"})
	remove, _ := RemoveProxyBody(1, f.cfg.Proxies[0].Address)
	for what, body := range map[string]*cell.Cell{
		"set owner":              owner,
		"set params":             params,
		"set worker measurement": SetWorkerMeasurementBody(1, hashOf("evil"), true),
		"set proxy measurement":  SetProxyMeasurementBody(1, hashOf("evil"), true),
		"set model":              SetModelBody(1, hashOf("evil"), true),
		"register proxy":         register,
		"remove proxy":           remove,
	} {
		f.mustRefuse(what+" by a stranger", f.stranger, body, ExitNotOwner)
	}
	f.mustRefuse("an unknown opcode", f.owner, cell.BeginCell().MustStoreUInt(0xdeadbeef, 32).MustStoreUInt(0, 64).EndCell(), ExitUnknownOp)
	// Anyone may top up the root's balance with a plain transfer.
	mustExit(t, "plain transfer", f.send(f.stranger.addr, f.addr, ton, cell.BeginCell().EndCell(), nil), 0)
}

func TestRootConfigRejectsBadInput(t *testing.T) {
	if _, err := (RootConfig{}).Data(); err == nil {
		t.Error("root without owner")
	}
	p := testParams
	p.ClientCloseDelay = 1500 * time.Millisecond
	if _, err := SetParamsBody(1, p); err == nil {
		t.Error("close delay that is not whole seconds")
	}
	if _, err := RegisterProxyBody(1, Proxy{Address: newParty("p").addr, PublicKey: []byte{1}}); err == nil {
		t.Error("proxy with a short key")
	}
	if _, err := SetOwnerBody(1, address.NewAddressNone()); err == nil {
		t.Error("owner addr_none")
	}
	if _, err := ParseParams([]any{}); err == nil {
		t.Error("ParseParams of an empty result")
	}
}
