package publisher

import (
	"fmt"

	"github.com/heraldrelay/herald"
)

// Encode returns job's wire encoding without completing or validating it;
// Publish does both. It is herald.EncodeJob, which new code should call; it
// stays for existing importers.
func Encode(job *herald.Job) ([]byte, error) {
	data, err := herald.EncodeJob(job)
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	return data, nil
}

// Decode parses and validates a job from a message body. It is
// herald.DecodeJob (see there for its errors), which new code should call;
// it stays for existing importers.
func Decode(data []byte) (herald.Job, error) { return herald.DecodeJob(data) }
