// Package herald holds Herald's shared vocabulary: the versioned Job that is
// the only type on the JetStream wire, and its JSON codec (EncodeJob,
// DecodeJob) that publisher and consumer both use; the Notification a channel
// delivers; the status record of a job; subject names; and the errors
// channels return to say what should happen to a job next.
//
// It imports nothing else of Herald's; every other package points inward to it.
package herald
