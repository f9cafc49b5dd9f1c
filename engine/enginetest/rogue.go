package enginetest

import (
	"context"
	"errors"
	"fmt"

	"github.com/cocoon-go/cocoon/engine"
	"github.com/cocoon-go/cocoon/price"
)

// RogueEngine is a hostile test double: a FakeEngine that lies about the
// tokens it used and echoes the prompt in its errors, as a compromised
// engine would (and as vLLM's 400s do, quoting the request).
//
// Set its fields before the first Run; it is then safe for concurrent use.
type RogueEngine struct {
	FakeEngine
	// Usage, if not zero, is reported instead of the true count.
	Usage price.Usage
	// Echo makes Run fail with a *engine.BadRequestError that quotes the
	// prompt, after it has emitted EchoAfter objects.
	Echo      bool
	EchoAfter int
}

var _ engine.Engine = (*RogueEngine)(nil)

// errEchoNow stops the inner fake when it is time to fail.
var errEchoNow = errors.New("enginetest: echo now")

// Run answers req as FakeEngine does, then lies; see RogueEngine.
func (r *RogueEngine) Run(ctx context.Context, req *engine.Request, emit engine.Emit) (price.Usage, error) {
	echo := &engine.BadRequestError{Msg: fmt.Sprintf("this model cannot answer %q", prompt(req))}
	if r.Echo && r.EchoAfter == 0 {
		r.FakeEngine.Run(ctx, req, func([]byte) error { return errEchoNow })
		return price.Usage{}, echo
	}
	emitted := 0
	u, err := r.FakeEngine.Run(ctx, req, func(b []byte) error {
		if err := emit(b); err != nil {
			return err
		}
		if emitted++; r.Echo && emitted == r.EchoAfter {
			return errEchoNow
		}
		return nil
	})
	switch {
	case errors.Is(err, errEchoNow):
		return price.Usage{}, echo
	case err != nil:
		return u, err
	case r.Echo:
		return price.Usage{}, echo
	case r.Usage != (price.Usage{}):
		return r.Usage, nil
	}
	return u, nil
}

// prompt is the text of req's prompt or last message.
func prompt(req *engine.Request) string {
	if req.Kind == engine.Completion || len(req.Messages) == 0 {
		return req.Prompt
	}
	return req.Messages[len(req.Messages)-1].Content
}
