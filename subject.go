package herald

// Stream, subject and bucket names. They are part of the public contract:
// other backends publish jobs to JobSubject(channel) directly.
const (
	// JobsStream is the JetStream stream (work-queue retention) holding jobs.
	JobsStream = "HERALD_JOBS"
	// JobSubjectPrefix prefixes every job subject: herald.jobs.<channel>.
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

// JobSubject returns the subject jobs for channel c are published on.
func JobSubject(c Channel) string { return JobSubjectPrefix + string(c) }

// DeadLetterSubject returns the subject dead letters for channel c are published on.
func DeadLetterSubject(c Channel) string { return DeadLetterSubjectPrefix + string(c) }
