// Package models ships the default model of the embedded engine.
package models

import _ "embed"

// Name is the model name apps use for the default model.
const Name = "cocoon-tiny"

// CocoonTiny is the GGUF file of the default model: a toy Llama-architecture
// model of a few million parameters (F16 weights, F32 norms) with a GPT-2 style
// byte-level BPE tokenizer and a ChatML chat template, trained on the King James
// Bible on CPU by training/train.py. See training/README.md for how it was made
// and the exact command line.
//
//go:embed cocoon-tiny.gguf
var CocoonTiny []byte
