package herald

import "strings"

// Stream, subject and bucket names. They are part of the public contract:
// other backends publish jobs to JobSubject(channel) (or
// JobIDSubject(channel, id)) directly.
const (
	// JobsStream is the JetStream stream (work-queue retention) holding jobs.
	JobsStream = "HERALD_JOBS"
	// JobSubjectPrefix prefixes every job subject: herald.jobs.<channel>, or
	// herald.jobs.<channel>.<id>.
	JobSubjectPrefix = "herald.jobs."
	// JobSubjects is the wildcard the jobs stream listens on.
	JobSubjects = JobSubjectPrefix + ">"

	// DeadLetterStream is the stream (limits retention) holding dead letters.
	DeadLetterStream = "HERALD_DLQ"
	// DeadLetterSubjectPrefix prefixes every dead-letter subject: herald.dlq.<channel>.
	DeadLetterSubjectPrefix = "herald.dlq."
	// DeadLetterSubjects is the wildcard the dead-letter stream listens on.
	DeadLetterSubjects = DeadLetterSubjectPrefix + ">"

	// StatusBucket is the JetStream key-value bucket of job status records,
	// keyed by job id.
	StatusBucket = "herald_status"

	// WorkersConsumer is the durable pull consumer shared by every worker.
	WorkersConsumer = "herald-workers"
)

// JobSubject returns the subject jobs for channel c may be published on:
// herald.jobs.<channel>.
func JobSubject(c Channel) string { return JobSubjectPrefix + string(c) }

// JobIDSubject returns the subject Herald's publisher stores job id of
// channel c on: herald.jobs.<channel>.<id>. Workers consume it exactly like
// JobSubject(c); a subject per job also lets a status lookup find a job still
// waiting in the stream by its id (see JobIDSubjectPattern), which spares a
// "queued" status write per job. id must be a valid job id (ValidID), whose
// characters are all safe in a subject token.
func JobIDSubject(c Channel, id string) string {
	return JobSubjectPrefix + string(c) + "." + id
}

// JobIDSubjectPattern returns the subject filter matching job id on any
// channel: herald.jobs.*.<id>.
func JobIDSubjectPattern(id string) string { return JobSubjectPrefix + "*." + id }

// SubjectChannel returns the channel a job subject names (the token after
// JobSubjectPrefix, for both JobSubject and JobIDSubject forms), or "" when
// subject is not a job subject. The result may be an unknown channel: check
// it with Valid.
func SubjectChannel(subject string) Channel {
	rest, ok := strings.CutPrefix(subject, JobSubjectPrefix)
	if !ok {
		return ""
	}
	c, _, _ := strings.Cut(rest, ".")
	return Channel(c)
}

// DeadLetterSubject returns the subject dead letters for channel c are published on.
func DeadLetterSubject(c Channel) string { return DeadLetterSubjectPrefix + string(c) }
