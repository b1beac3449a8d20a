package herald

import "time"

// State is where a job stands.
type State string

// Job states. Delivered, Failed and Dead are final.
const (
	StateQueued     State = "queued"     // stored in JetStream, not yet tried
	StateDelivering State = "delivering" // being sent, or waiting to be sent again
	StateDelivered  State = "delivered"  // the destination accepted it
	StateFailed     State = "failed"     // failed for good and not kept
	StateDead       State = "dead"       // failed for good, kept in the dead letters
)

// Final reports whether no further change of state will happen.
func (s State) Final() bool { return s == StateDelivered || s == StateFailed || s == StateDead }

// Status is a job's status record (JSON in the StatusBucket, keyed by job id).
// It never holds credentials: LastError comes from DestinationError texts and
// Herald's own messages.
type Status struct {
	ID        string    `json:"id"`
	Channel   Channel   `json:"channel,omitempty"`
	State     State     `json:"state"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	UpdatedAt time.Time `json:"updated_at"`
	// NextAttemptAt is when a job that waits (State delivering, parked by a
	// worker for a retry_after, pacing, an open breaker or a backoff) is
	// tried again; zero when it is not waiting. The workers also use it to
	// tell the one live copy of a parked job from a stale one.
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
}
