// Package hung keeps destinations that do not answer from taking the worker
// pool. A send holds a worker until its destination answers or the consumer's
// send timeout ends it; pacing caps the sends to one destination
// (pacing.max_in_flight), but many destinations that never answer, each new,
// would still hold every worker, one send each, for the whole send timeout,
// again and again.
//
// The Gate tells destinations known to answer from the others. Sends to the
// others (new destinations, and those a send went unanswered to lately)
// together hold at most a share of the workers (pacing.hung_share, half); a
// job beyond it goes back to the queue without a send and without using an
// attempt, the way pacing gives back a job whose destination is at its cap.
// Destinations known to answer never wait for the Gate, so they always keep
// the other workers.
package hung
