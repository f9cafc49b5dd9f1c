package local

import (
	_ "embed"
	"fmt"
	"math/big"

	"github.com/xssnick/tonutils-go/tlb"
	"github.com/xssnick/tonutils-go/tvm/cell"
)

// GlobalID is the local chain's global id (config parameter 19): the ASCII bytes "COCO". Mainnet is -239
// and testnet -3; because V5R1 wallets sign the global id into every message, a message signed for the
// local chain can never be replayed on TON, and one key has a different wallet address here.
const GlobalID int32 = 0x434f434f

// mainnetConfig is TON mainnet's blockchain configuration (global version 13, capabilities 494), copied
// from tonutils-go v1.18.0 (MIT licence), tvm/testdata/transaction_replay_regression.json,
// "config_root_boc_base64". It is the config the tonutils-go TVM is tested to replay mainnet blocks with.
//
//go:embed mainnet-config.boc
var mainnetConfig []byte

// Config returns the local chain's blockchain configuration: mainnet's (see mainnet-config.boc) with
// parameter 19, the global id, replaced by GlobalID. Its prices are mainnet's at the time:
//
//   - gas, workchain 0: 66.67 nanoTON per gas unit (4369067/2^16), the first 100 gas for a flat 6667
//     nanoTON, 1,000,000 gas per transaction at most, a 10,000 gas credit for external messages;
//   - forwarding, workchain 0: 66,667 nanoTON per message plus 66.67 per bit and 6,666.7 per cell
//     (4369067 and 436906667 per 2^16), a third of which the sender pays as an action fee;
//   - storage: 1 nanoTON per bit and 500 per cell per 2^16 seconds (masterchain 1000 and 500,000);
//   - masterchain (-1) gas 10,000 nanoTON per gas unit and forwarding 10^7 nanoTON per message.
func Config() (*cell.Cell, error) {
	root, err := cell.FromBOC(mainnetConfig)
	if err != nil {
		return nil, fmt.Errorf("local: embedded config: %w", err)
	}
	id, err := tlb.ToCell(&tlb.GlobalIDConfig{GlobalID: GlobalID})
	if err != nil {
		return nil, fmt.Errorf("local: global id: %w", err)
	}
	dict := root.AsDict(32)
	if err := dict.SetIntKey(big.NewInt(19), cell.BeginCell().MustStoreRef(id).EndCell()); err != nil {
		return nil, fmt.Errorf("local: set global id: %w", err)
	}
	return dict.AsCell(), nil
}
