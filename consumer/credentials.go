package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldrelay/herald"
)

// CredentialResolver opens a credential stored in Herald's vault, for jobs
// that name one (herald.Job.CredentialID) instead of carrying sealed
// credentials; *vault.Vault satisfies it. It must be safe for concurrent use.
//
// Resolve returns the plaintext target of credential id for a job of channel
// c and owner (herald.Job.Owner), which the Pool keeps only for the duration
// of the attempt. A job with an owner must not get a credential of another
// owner: that is the error of an unknown credential. An error that can never
// change (unknown or deleted credential, another owner's, another channel,
// not verified, a key that is not configured) must wrap herald.ErrPermanent: the
// job is dead-lettered with cause "credentials". Any other error (the store
// is unreachable) is transient and the job is retried. Error texts must not
// hold the target.
type CredentialResolver interface {
	Resolve(ctx context.Context, id string, c herald.Channel, owner string) (herald.Target, error)
}

// resolveTimeout bounds one Resolve, so an unreachable store cannot hold a
// worker.
const resolveTimeout = 5 * time.Second

// resolveCredential opens d.Job.CredentialID through the vault into
// d.Notification.Target.
func (p *Pool) resolveCredential(ctx context.Context, d *Delivery) error {
	if p.credentials == nil {
		// Transient on purpose, as for a channel without a sender: the
		// operator can configure the vault, and the job waits for it.
		return errors.New("consumer: job names a credential_id but no credential vault is configured")
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	t, err := p.credentials.Resolve(ctx, d.Job.CredentialID, d.Job.Channel, d.Job.Owner)
	if err != nil {
		err = fmt.Errorf("consumer: resolve credential_id %s: %w", d.Job.CredentialID, err)
		if errors.Is(err, herald.ErrPermanent) {
			return withCause(CauseCredentials, err)
		}
		return err
	}
	d.Notification.Target = t
	return nil
}
