package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
)

// errPanic is wrapped by the error a recovered panic becomes. It is a
// transient error: the job is retried with backoff, since a panic says more
// about this build than about the job.
var errPanic = errors.New("handler panicked")

// recoverer turns a panic anywhere below it into a transient error, and logs
// the stack. The panic value is shown only when the runtime made it (a nil
// dereference, an index out of range): any other value may have been built
// from a credential, so only its type is shown. A stack trace prints argument
// words, not string contents, so it carries no secret.
func recoverer(log *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, d *Delivery) (err error) {
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				err = fmt.Errorf("consumer: %w: %s", errPanic, describePanic(v))
				log.LogAttrs(ctx, slog.LevelError, "panic",
					slog.String("job_id", d.Job.ID),
					slog.String("channel", string(d.Job.Channel)),
					slog.String("error", err.Error()),
					slog.String("stack", string(debug.Stack())),
				)
			}()
			return next(ctx, d)
		}
	}
}

// describePanic says what panicked without repeating a value that could hold
// a secret.
func describePanic(v any) string {
	var re runtime.Error
	if err, ok := v.(error); ok && errors.As(err, &re) {
		return re.Error()
	}
	return fmt.Sprintf("panic value of type %T", v)
}
