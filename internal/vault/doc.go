// Package vault keeps destination credentials sealed at rest, so that jobs
// can name a stored credential (herald.Job.CredentialID) instead of carrying
// sealed credentials, and keeps read-once secrets.
//
// A credential is a Discord webhook URL or a Telegram bot token and chat id.
// It is sealed with AES-256-GCM under the newest vault key, with the
// credential's id and channel as additional data (a record copied under
// another id does not open), and stored as JSON in the CredentialsBucket
// key-value bucket under "c.<id>". The record names the key that sealed it
// (its key id), so keys can be rotated: Rotate re-seals every record under
// the newest key, one compare-and-set update at a time, and every record
// stays readable by one of the configured keys throughout.
//
// Owners: a credential may record an owner (StoreOptions.Owner, the keyed id
// of the API secret that stored it). Every method that reads or changes a
// credential takes the owner it acts for, and to any other owner the
// credential is ErrNotFound, the same answer as for a missing one. A
// credential without an owner (the registration page's, and every record
// stored before owners existed) belongs to nobody: whoever holds its id (128
// random bits, herald.NewID) may use it. Rotate keeps owners.
//
// No method returns a credential's plaintext except Resolve, which the
// delivery workers call for the duration of one send. Errors never include a
// credential, a code or a secret's value.
//
// Destination verification: a credential stored with verification (or while
// Config.RequireVerification is set) gets a six-digit code sent to the
// destination itself through Deps.Notifier (normally a job on the jobs
// stream, see JobNotifier); Verify confirms it. Such a credential cannot be
// used until it is verified, and it is deleted after Config.MaxWrongCodes
// wrong codes, or when it is still unverified Config.PendingTTL after it was
// stored.
//
// Read-once secrets (PutSecret, TakeSecret) are sealed values in the
// SecretsBucket bucket that expire on their own and can be read once: the
// read deletes them with a compare-and-set, so of two concurrent reads, on
// any replicas, exactly one gets the value.
package vault
