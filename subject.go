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

	// ParkedStream is the stream (work-queue retention, message schedules)
	// where jobs wait that a worker held back: for a destination's
	// retry_after, Herald's pacing, an open breaker, a backoff. A held-back
	// job is stored there as a message schedule on its ParkedHoldSubject;
	// when its time comes the server publishes it on ParkedDueSubject of its
	// channel, where the workers take it again. Waiting there holds nothing
	// of the jobs stream's consumer.
	ParkedStream = "HERALD_PARKED"
	// ParkedSubjectPrefix prefixes every subject of ParkedStream.
	ParkedSubjectPrefix = "herald.parked."
	// ParkedSubjects is the wildcard ParkedStream listens on.
	ParkedSubjects = ParkedSubjectPrefix + ">"
	// ParkedDueSubjects is the wildcard of the parked jobs whose time has come.
	ParkedDueSubjects = ParkedSubjectPrefix + "due.>"
	// ParkedHoldSubjects is the wildcard of the parked jobs still waiting.
	ParkedHoldSubjects = ParkedSubjectPrefix + "hold.>"
)

// ParkedHoldSubject returns the subject job id of channel c waits on while
// parked: herald.parked.hold.<channel>.<id>. One schedule per subject: a job
// parked again replaces its earlier schedule. id must be a valid job id.
func ParkedHoldSubject(c Channel, id string) string {
	return ParkedSubjectPrefix + "hold." + string(c) + "." + id
}

// ParkedDueSubject returns the subject parked jobs of channel c come back on
// when their time has come: herald.parked.due.<channel>.
func ParkedDueSubject(c Channel) string { return ParkedSubjectPrefix + "due." + string(c) }

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
