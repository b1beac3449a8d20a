package publisher

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/heraldrelay/herald"
)

// encoder is a reusable JSON encoder writing into its own buffers. Pooling it
// keeps Publish from allocating for the encoding. The encoding is
// encoding/json's, driven by herald.Job's struct tags: appendJob writes it out
// by hand (tests hold it to encoding/json's output), and encoding/json itself
// takes over for what appendJob leaves to it.
type encoder struct {
	raw []byte // appendJob's output
	buf bytes.Buffer
	enc *json.Encoder
}

var encoderPool = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = json.NewEncoder(&e.buf)
	// Jobs are not embedded in HTML; escaping <, > and & would only grow them.
	e.enc.SetEscapeHTML(false)
	return e
}}

// maxPooledBuffer keeps one huge job from pinning its buffer in the pool.
const maxPooledBuffer = 64 << 10

func getEncoder() *encoder { return encoderPool.Get().(*encoder) }

func putEncoder(e *encoder) {
	if e.buf.Cap() > maxPooledBuffer || cap(e.raw) > maxPooledBuffer {
		return
	}
	encoderPool.Put(e)
}

// encode returns job's JSON encoding, valid until the next use of e.
func (e *encoder) encode(job *herald.Job) ([]byte, error) {
	if raw, ok := appendJob(e.raw[:0], job); ok {
		e.raw = raw
		return raw, nil
	}
	return e.encodeJSON(job)
}

// encodeJSON is encode with encoding/json.
func (e *encoder) encodeJSON(job *herald.Job) ([]byte, error) {
	e.buf.Reset()
	if err := e.enc.Encode(job); err != nil {
		return nil, err
	}
	// Encode ends with a newline; the wire format has none.
	b := e.buf.Bytes()
	return b[:len(b)-1], nil
}

// Encode returns job's wire encoding (JSON) without completing or validating
// it; Publish does both. It exists for publishers that send jobs themselves
// (a dead-letter replay, say) and for tests. The result is the caller's.
func Encode(job *herald.Job) ([]byte, error) {
	e := getEncoder()
	defer putEncoder(e)
	data, err := e.encode(job)
	if err != nil {
		return nil, fmt.Errorf("publisher: encode job: %w", err)
	}
	return bytes.Clone(data), nil
}

// Decode parses a job from a message body and validates it (see
// herald.Job.Validate). Every error wraps herald.ErrInvalidJob; a job of
// another wire version is refused with an error naming its version, even when
// the rest of its shape is unknown to this build. Unknown fields are ignored:
// they are backwards-compatible additions of the same version. The error text
// never contains credential material.
func Decode(data []byte) (herald.Job, error) {
	job, ok := parseJob(data)
	if !ok {
		var err error
		if job, err = decodeJSON(data); err != nil {
			return herald.Job{}, err
		}
	}
	if err := job.Validate(); err != nil {
		return herald.Job{}, fmt.Errorf("publisher: decode job: %w", err)
	}
	return job, nil
}

// decodeJSON is Decode's encoding/json path, for what parseJob leaves to it:
// it decodes without validating, and says what is wrong with data.
func decodeJSON(data []byte) (herald.Job, error) {
	var job herald.Job
	if err := json.Unmarshal(data, &job); err != nil {
		// A job of another version may not even parse as this one: report the
		// version, which is the real problem, when it can be read.
		var v struct {
			Version *int `json:"v"`
		}
		if json.Unmarshal(data, &v) == nil && v.Version != nil && *v.Version != herald.JobVersion {
			return herald.Job{}, fmt.Errorf("publisher: decode job: %w: unsupported version %d (this build reads v%d)", herald.ErrInvalidJob, *v.Version, herald.JobVersion)
		}
		return herald.Job{}, fmt.Errorf("publisher: decode job: %w: %s", herald.ErrInvalidJob, describeJSONError(err))
	}
	return job, nil
}

// describeJSONError says what is wrong without quoting the input, which may
// hold sealed credentials.
func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %s: want %s, got JSON %s", typ.Field, typ.Type, typ.Value)
		}
		return fmt.Sprintf("want %s, got JSON %s", typ.Type, typ.Value)
	default:
		return "malformed JSON"
	}
}
