package channels

import (
	"fmt"

	"github.com/heraldrelay/herald"
)

// ErrInvalidTarget is wrapped, together with herald.ErrPermanent, by every
// error CheckTarget (and ParseWebhook) returns: errors.Is holds for both. The
// error text says what is wrong and never repeats the credential. It is
// herald.ErrInvalidTarget, so that the consumer can tell it without knowing
// the channels.
var ErrInvalidTarget = herald.ErrInvalidTarget

// invalidTarget builds a CheckTarget error. reason must not contain the
// credential being checked.
func invalidTarget(reason string) error {
	return herald.Permanent(fmt.Errorf("%w: %s", ErrInvalidTarget, reason))
}
