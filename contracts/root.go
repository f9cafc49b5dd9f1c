package contracts

import (
	"crypto/ed25519"
	"fmt"
	"math/big"
	"time"

	"github.com/xssnick/tonutils-go/address"
	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// Opcodes of the root's owner operations.
const (
	OpSetOwner             uint32 = 0x636f7201
	OpSetParams            uint32 = 0x636f7202
	OpSetWorkerMeasurement uint32 = 0x636f7203
	OpSetProxyMeasurement  uint32 = 0x636f7204
	OpSetModel             uint32 = 0x636f7205
	OpRegisterProxy        uint32 = 0x636f7206
	OpRemoveProxy          uint32 = 0x636f7207
)

// Exit codes with which the root refuses a message.
const (
	ExitNotOwner     = 201 // an operation not from the owner
	ExitUnknownProxy = 202 // removing a proxy that is not registered
)

// Root get-methods.
const (
	GetOwner                   = "get_owner"
	GetParams                  = "get_params"
	IsWorkerMeasurementAllowed = "is_worker_measurement_allowed"
	IsProxyMeasurementAllowed  = "is_proxy_measurement_allowed"
	IsModelAllowed             = "is_model_allowed"
	GetWorkerMeasurements      = "get_worker_measurements"
	GetProxyMeasurements       = "get_proxy_measurements"
	GetModels                  = "get_models"
	GetProxies                 = "get_proxies"
	GetProxy                   = "get_proxy"
)

// Params are the network's prices and limits. Multipliers are in 1/10000 (10000 = 1×), as
// in package price.
type Params struct {
	BasePrice            uint64 // nanoTON per token, before multipliers
	WorkerFee            uint64 // nanoTON per token a proxy pays its workers
	PromptMultiplier     uint32
	CachedMultiplier     uint32
	CompletionMultiplier uint32
	MinProxyStake        uint64        // nanoTON
	MinWorkerStake       uint64        // nanoTON
	ClientCloseDelay     time.Duration // close delay of client→proxy channels; whole seconds
	WorkerCloseDelay     time.Duration // close delay of proxy→worker channels; whole seconds
}

func (p Params) store(b *cell.Builder) error {
	client, err := seconds(p.ClientCloseDelay)
	if err != nil {
		return fmt.Errorf("contracts: client close delay: %w", err)
	}
	worker, err := seconds(p.WorkerCloseDelay)
	if err != nil {
		return fmt.Errorf("contracts: worker close delay: %w", err)
	}
	b.MustStoreCoins(p.BasePrice).
		MustStoreCoins(p.WorkerFee).
		MustStoreUInt(uint64(p.PromptMultiplier), 32).
		MustStoreUInt(uint64(p.CachedMultiplier), 32).
		MustStoreUInt(uint64(p.CompletionMultiplier), 32).
		MustStoreCoins(p.MinProxyStake).
		MustStoreCoins(p.MinWorkerStake).
		MustStoreUInt(uint64(client), 32).
		MustStoreUInt(uint64(worker), 32)
	return nil
}

func loadParams(s *cell.Slice) (Params, error) {
	var p Params
	var err error
	u32 := func() uint32 {
		var v uint64
		if err == nil {
			v, err = s.LoadUInt(32)
		}
		return uint32(v)
	}
	coins := func() uint64 {
		var v uint64
		if err == nil {
			v, err = loadCoins64(s)
		}
		return v
	}
	p.BasePrice = coins()
	p.WorkerFee = coins()
	p.PromptMultiplier = u32()
	p.CachedMultiplier = u32()
	p.CompletionMultiplier = u32()
	p.MinProxyStake = coins()
	p.MinWorkerStake = coins()
	p.ClientCloseDelay = time.Duration(u32()) * time.Second
	p.WorkerCloseDelay = time.Duration(u32()) * time.Second
	return p, err
}

// Proxy is a registered proxy.
type Proxy struct {
	Address   *address.Address
	PublicKey ed25519.PublicKey
	Endpoint  string // where clients reach it, e.g. https://host:port
}

// proxyValue is a proxy's dictionary value: public_key:uint256 endpoint:^SnakeString.
func (p Proxy) value() (*cell.Builder, error) {
	if len(p.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("contracts: proxy %v: public key must be %d bytes", p.Address, ed25519.PublicKeySize)
	}
	endpoint, err := snake(p.Endpoint)
	if err != nil {
		return nil, err
	}
	return cell.BeginCell().MustStoreSlice(p.PublicKey, 256).MustStoreRef(endpoint), nil
}

func snake(s string) (*cell.Cell, error) {
	b := cell.BeginCell()
	if err := b.StoreStringSnake(s); err != nil {
		return nil, fmt.Errorf("contracts: string %q: %w", s, err)
	}
	return b.EndCell(), nil
}

// addrKey is a proxies-dictionary key: the 267-bit standard address.
func addrKey(a *address.Address) (*cell.Cell, error) {
	if a == nil || a.Type() != address.StdAddress {
		return nil, fmt.Errorf("contracts: %v is not a standard address", a)
	}
	return cell.BeginCell().MustStoreAddr(a).EndCell(), nil
}

// RootConfig is the root's initial state.
type RootConfig struct {
	Owner              *address.Address
	Params             Params
	WorkerMeasurements [][32]byte // allowed worker TEE measurements
	ProxyMeasurements  [][32]byte // allowed proxy TEE measurements
	Models             [][32]byte // allowed model hashes
	Proxies            []Proxy
}

func hashSet(hashes [][32]byte) *cell.Dictionary {
	d := cell.NewDict(256)
	for _, h := range hashes {
		// A 32-byte key in a 256-bit dictionary with a one-bit value cannot fail to store.
		_ = d.SetBuilderByBytesKey(h[:], cell.BeginCell().MustStoreBoolBit(true))
	}
	return d
}

// Data is the root's initial data cell.
func (c RootConfig) Data() (*cell.Cell, error) {
	if c.Owner == nil || c.Owner.Type() != address.StdAddress {
		return nil, fmt.Errorf("contracts: root owner must be a standard address")
	}
	proxies := cell.NewDict(267)
	for _, p := range c.Proxies {
		key, err := addrKey(p.Address)
		if err != nil {
			return nil, err
		}
		v, err := p.value()
		if err != nil {
			return nil, err
		}
		if err := proxies.SetBuilder(key, v); err != nil {
			return nil, fmt.Errorf("contracts: proxy %v: %w", p.Address, err)
		}
	}
	b := cell.BeginCell().MustStoreAddr(c.Owner)
	if err := c.Params.store(b); err != nil {
		return nil, err
	}
	return b.MustStoreDict(hashSet(c.WorkerMeasurements)).
		MustStoreDict(hashSet(c.ProxyMeasurements)).
		MustStoreDict(hashSet(c.Models)).
		MustStoreDict(proxies).
		EndCell(), nil
}

// StateInit is the root's code and initial data, to deploy it.
func (c RootConfig) StateInit() (*tlb.StateInit, error) {
	data, err := c.Data()
	if err != nil {
		return nil, err
	}
	return stateInit(RootCode(), data), nil
}

// Address is where the root lives in the basechain.
func (c RootConfig) Address() (*address.Address, error) {
	data, err := c.Data()
	if err != nil {
		return nil, err
	}
	return addressOf(RootCode(), data), nil
}

// ParseRootData decodes a root's data cell (its persistent storage) into the config it
// now holds, lists sorted by key.
func ParseRootData(data *cell.Cell) (*RootConfig, error) {
	c, err := parseRootData(data)
	if err != nil {
		return nil, fmt.Errorf("%w: root data: %v", ErrMalformed, err)
	}
	return c, nil
}

func parseRootData(data *cell.Cell) (*RootConfig, error) {
	s, err := data.BeginParse()
	if err != nil {
		return nil, err
	}
	c := &RootConfig{}
	if c.Owner, err = s.LoadAddr(); err != nil {
		return nil, err
	}
	if c.Params, err = loadParams(s); err != nil {
		return nil, err
	}
	for _, list := range []*[][32]byte{&c.WorkerMeasurements, &c.ProxyMeasurements, &c.Models} {
		d, err := s.LoadDict(256)
		if err != nil {
			return nil, err
		}
		if *list, err = hashKeys(d.AsCell()); err != nil {
			return nil, err
		}
	}
	d, err := s.LoadDict(267)
	if err != nil {
		return nil, err
	}
	if c.Proxies, err = proxyList(d.AsCell()); err != nil {
		return nil, err
	}
	return c, nil
}

// hashKeys lists the keys of a dictionary with 256-bit keys; nil is the empty dictionary.
func hashKeys(dict *cell.Cell) ([][32]byte, error) {
	if dict == nil {
		return nil, nil
	}
	items, err := dict.AsDict(256).Range(false, false)
	if err != nil {
		return nil, err
	}
	out := make([][32]byte, 0, len(items))
	for _, it := range items {
		k, err := it.Key.MustBeginParse().LoadSlice(256)
		if err != nil {
			return nil, err
		}
		out = append(out, [32]byte(k))
	}
	return out, nil
}

// proxyList decodes the proxies dictionary; nil is the empty dictionary.
func proxyList(dict *cell.Cell) ([]Proxy, error) {
	if dict == nil {
		return nil, nil
	}
	items, err := dict.AsDict(267).Range(false, false)
	if err != nil {
		return nil, err
	}
	out := make([]Proxy, 0, len(items))
	for _, it := range items {
		addr, err := it.Key.MustBeginParse().LoadAddr()
		if err != nil {
			return nil, err
		}
		p, err := loadProxyValue(addr, it.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

func loadProxyValue(addr *address.Address, v *cell.Slice) (Proxy, error) {
	key, err := v.LoadSlice(256)
	if err != nil {
		return Proxy{}, err
	}
	ref, err := v.LoadRef()
	if err != nil {
		return Proxy{}, err
	}
	endpoint, err := ref.LoadStringSnake()
	if err != nil {
		return Proxy{}, err
	}
	return Proxy{Address: addr, PublicKey: key, Endpoint: endpoint}, nil
}

// SetOwnerBody hands the root to a new owner.
func SetOwnerBody(queryID uint64, owner *address.Address) (*cell.Cell, error) {
	if owner == nil || owner.Type() != address.StdAddress {
		return nil, fmt.Errorf("contracts: new owner must be a standard address")
	}
	return header(OpSetOwner, queryID).MustStoreAddr(owner).EndCell(), nil
}

// SetParamsBody replaces all prices and limits.
func SetParamsBody(queryID uint64, p Params) (*cell.Cell, error) {
	b := cell.BeginCell()
	if err := p.store(b); err != nil {
		return nil, err
	}
	return header(OpSetParams, queryID).MustStoreRef(b.EndCell()).EndCell(), nil
}

func setMemberBody(op uint32, queryID uint64, hash [32]byte, allowed bool) *cell.Cell {
	return header(op, queryID).MustStoreSlice(hash[:], 256).MustStoreBoolBit(allowed).EndCell()
}

// SetWorkerMeasurementBody allows (or, with allowed false, disallows) a worker measurement.
func SetWorkerMeasurementBody(queryID uint64, hash [32]byte, allowed bool) *cell.Cell {
	return setMemberBody(OpSetWorkerMeasurement, queryID, hash, allowed)
}

// SetProxyMeasurementBody allows or disallows a proxy measurement.
func SetProxyMeasurementBody(queryID uint64, hash [32]byte, allowed bool) *cell.Cell {
	return setMemberBody(OpSetProxyMeasurement, queryID, hash, allowed)
}

// SetModelBody allows or disallows a model hash.
func SetModelBody(queryID uint64, hash [32]byte, allowed bool) *cell.Cell {
	return setMemberBody(OpSetModel, queryID, hash, allowed)
}

// RegisterProxyBody registers a proxy, or replaces the key and endpoint of one already
// registered.
func RegisterProxyBody(queryID uint64, p Proxy) (*cell.Cell, error) {
	if _, err := addrKey(p.Address); err != nil {
		return nil, err
	}
	v, err := p.value()
	if err != nil {
		return nil, err
	}
	return header(OpRegisterProxy, queryID).MustStoreAddr(p.Address).MustStoreBuilder(v).EndCell(), nil
}

// RemoveProxyBody removes a registered proxy; removing an unknown one fails with
// ExitUnknownProxy.
func RemoveProxyBody(queryID uint64, proxy *address.Address) (*cell.Cell, error) {
	if _, err := addrKey(proxy); err != nil {
		return nil, err
	}
	return header(OpRemoveProxy, queryID).MustStoreAddr(proxy).EndCell(), nil
}

// ParseOwner decodes the result of get_owner.
func ParseOwner(vals []any) (*address.Address, error) {
	s := newStack(GetOwner, vals, 1)
	a := s.address()
	return a, s.err
}

// ParseParams decodes the result of get_params.
func ParseParams(vals []any) (Params, error) {
	s := newStack(GetParams, vals, 9)
	p := Params{
		BasePrice:            s.uint(64),
		WorkerFee:            s.uint(64),
		PromptMultiplier:     uint32(s.uint(32)),
		CachedMultiplier:     uint32(s.uint(32)),
		CompletionMultiplier: uint32(s.uint(32)),
		MinProxyStake:        s.uint(64),
		MinWorkerStake:       s.uint(64),
		ClientCloseDelay:     time.Duration(s.uint(32)) * time.Second,
		WorkerCloseDelay:     time.Duration(s.uint(32)) * time.Second,
	}
	return p, s.err
}

// ParseAllowed decodes the result of is_worker_measurement_allowed,
// is_proxy_measurement_allowed or is_model_allowed.
func ParseAllowed(vals []any) (bool, error) {
	s := newStack("is_*_allowed", vals, 1)
	ok := s.bool()
	return ok, s.err
}

// HashArg is the get-method argument of is_*_allowed for a 32-byte hash.
func HashArg(hash [32]byte) *big.Int {
	return new(big.Int).SetBytes(hash[:])
}

// AddressArg is the get-method argument of get_proxy for an address.
func AddressArg(a *address.Address) *cell.Slice {
	return cell.BeginCell().MustStoreAddr(a).ToSlice()
}

// ParseHashList decodes the result of get_worker_measurements, get_proxy_measurements or
// get_models: the allowed hashes, sorted.
func ParseHashList(vals []any) ([][32]byte, error) {
	s := newStack("get_*", vals, 1)
	d := s.cell()
	if s.err != nil {
		return nil, s.err
	}
	out, err := hashKeys(d)
	if err != nil {
		return nil, fmt.Errorf("%w: allow-list: %v", ErrMalformed, err)
	}
	return out, nil
}

// ParseProxies decodes the result of get_proxies, sorted by address.
func ParseProxies(vals []any) ([]Proxy, error) {
	s := newStack(GetProxies, vals, 1)
	d := s.cell()
	if s.err != nil {
		return nil, s.err
	}
	out, err := proxyList(d)
	if err != nil {
		return nil, fmt.Errorf("%w: proxies: %v", ErrMalformed, err)
	}
	return out, nil
}

// ParseProxy decodes the result of get_proxy for proxy; found is false when it is not
// registered.
func ParseProxy(proxy *address.Address, vals []any) (p Proxy, found bool, err error) {
	s := newStack(GetProxy, vals, 3)
	found = s.bool()
	key := s.bytes32()
	endpoint := s.cell()
	if s.err != nil {
		return Proxy{}, false, s.err
	}
	if !found {
		return Proxy{}, false, nil
	}
	if endpoint == nil {
		return Proxy{}, false, fmt.Errorf("%w: get_proxy: no endpoint", ErrMalformed)
	}
	text, err := endpoint.MustBeginParse().LoadStringSnake()
	if err != nil {
		return Proxy{}, false, fmt.Errorf("%w: get_proxy endpoint: %v", ErrMalformed, err)
	}
	return Proxy{Address: proxy, PublicKey: key[:], Endpoint: text}, true, nil
}
