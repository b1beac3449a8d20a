//go:build tools

package herald

// Pins the modules Herald's packages use while they are being written, so
// `go mod tidy` keeps them. Removed once every module is imported for real.
import (
	_ "github.com/cenkalti/backoff/v4"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats-server/v2/test"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/sony/gobreaker/v2"
	_ "github.com/spf13/cobra"
	_ "github.com/spf13/viper"
	_ "golang.org/x/sync/errgroup"
	_ "golang.org/x/time/rate"
)
