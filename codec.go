package herald

import (
	"errors"
	"fmt"
	"strings"
	"time"

	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	jsonv1 "github.com/go-json-experiment/json/v1"
)

// The wire format is what encoding/json makes of Job, and other backends
// publish jobs with encoding/json and its kin in other languages, so the
// codec keeps encoding/json's semantics (go-json-experiment/json with its
// v1 options: omitempty of zero values, case-insensitive member names,
// invalid UTF-8 replaced, unknown members ignored), without encoding/json's
// HTML escaping, which only grows jobs that are never embedded in HTML. It
// decodes in about 60% of encoding/json's time and encodes as fast;
// docs/performance.md ("The job codec: hand-written or library") has the
// figures, and why the codec is not hand-written.
var (
	encodeOptions = json.JoinOptions(jsonv1.DefaultOptionsV1(), jsontext.EscapeForHTML(false))
	decodeOptions = jsonv1.DefaultOptionsV1()
)

// EncodeJob returns job's wire encoding (JSON, as encoding/json encodes job
// but without HTML escaping), without completing or validating it
// (publisher.Publisher.Publish does both). The result is the caller's.
func EncodeJob(job *Job) ([]byte, error) {
	data, err := json.Marshal(job, encodeOptions)
	if err != nil {
		return nil, fmt.Errorf("encode job: %s", describeJSONError(err))
	}
	return data, nil
}

// DecodeJob parses a job from its wire encoding and validates it (see
// Job.Validate). Every error wraps ErrInvalidJob and names what is wrong (the
// field, or the byte where the JSON breaks) without quoting the input, which
// may hold sealed credentials. A job of another wire version is refused with
// an error naming its version, even when the rest of its shape is unknown to
// this build. Unknown fields are ignored: they are backwards-compatible
// additions of the same version.
func DecodeJob(data []byte) (Job, error) {
	job, err := unmarshalJob(data)
	if err != nil {
		return Job{}, err
	}
	if err := job.Validate(); err != nil {
		return Job{}, err
	}
	return job, nil
}

// unmarshalJob is DecodeJob without the validation.
func unmarshalJob(data []byte) (Job, error) {
	var job Job
	if err := json.Unmarshal(data, &job, decodeOptions); err != nil {
		// A job of another version may not even parse as this one: report
		// the version, which is the real problem, when it can be read.
		var v struct {
			Version *int `json:"v"`
		}
		if json.Unmarshal(data, &v, decodeOptions) == nil && v.Version != nil && *v.Version != JobVersion {
			return Job{}, fmt.Errorf("%w: unsupported version %d (this build reads v%d)", ErrInvalidJob, *v.Version, JobVersion)
		}
		return Job{}, fmt.Errorf("%w: %s", ErrInvalidJob, describeJSONError(err))
	}
	return job, nil
}

// describeJSONError says what is wrong without quoting the input. The v1
// options make the library report encoding/json's error types.
func describeJSONError(err error) string {
	var syn *jsonv1.SyntaxError
	var typ *jsonv1.UnmarshalTypeError
	var tm *time.ParseError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		// Value is the JSON kind, and for a number the number too ("number
		// -100123"), which may be a chat id: keep the kind only.
		kind, _, _ := strings.Cut(typ.Value, " ")
		if typ.Field != "" {
			return fmt.Sprintf("field %s: want %s, got JSON %s", typ.Field, typ.Type, kind)
		}
		return fmt.Sprintf("want %s, got JSON %s", typ.Type, kind)
	case errors.As(err, &tm):
		return "malformed JSON: a time is not in RFC 3339 form"
	default:
		return "malformed JSON"
	}
}
