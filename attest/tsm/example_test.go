package tsm_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/cocoon-go/cocoon/attest"
	"github.com/cocoon-go/cocoon/attest/tsm"
)

// A worker finds its TEE and attests its key bundle; where there is none it
// says why, and development setups fall back to the simulated TEE.
func ExampleDetect() {
	var bundle *attest.Bundle // the worker's keys

	p, err := tsm.Detect()
	if errors.Is(err, tsm.ErrNoTEE) {
		log.Fatalf("%v (use --simulated-tee for development)", err)
	}
	if err != nil {
		log.Fatal(err)
	}
	ev, err := attest.Attest(p, bundle, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s evidence from %s: %d bytes\n", ev.Kind, p.Source(), len(ev.Marshal()))
}

// `cocoon attest show` prints what this machine can produce.
func ExampleDescribe() {
	d := tsm.Describe()
	fmt.Println(d)
	for _, dev := range d.Devices {
		fmt.Println("guest device:", dev)
	}
}
