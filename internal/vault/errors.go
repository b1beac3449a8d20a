package vault

import (
	"errors"
	"fmt"
)

// Errors of the vault. Their texts are safe to show a client: they never
// include a credential, a code, a secret's value or a key.
var (
	// ErrNotFound: no credential has the id (never stored, deleted, or
	// left unverified past Config.PendingTTL).
	ErrNotFound = errors.New("no such credential")
	// ErrUnverified: the credential needs its destination verified before
	// jobs may use it.
	ErrUnverified = errors.New("credential not verified")
	// ErrChannelMismatch: a job names a credential of another channel.
	ErrChannelMismatch = errors.New("credential is for another channel")
	// ErrUnknownKey: the record was sealed under a key id that is not
	// configured (an old key removed before Rotate finished).
	ErrUnknownKey = errors.New("sealed under a vault key that is not configured")
	// ErrCorrupt: the record does not open or decode (wrong key material
	// under a known key id, or damaged data).
	ErrCorrupt = errors.New("vault record does not open: wrong key or corrupted data")
	// ErrTargetRejected: the destination may not be stored (the channel's
	// TargetChecker refused it); the error's text says why.
	ErrTargetRejected = errors.New("destination not allowed")
	// ErrInvalidChannel: the channel is unknown.
	ErrInvalidChannel = errors.New("unknown channel")

	// ErrWrongCode is matched by every *WrongCodeError.
	ErrWrongCode = errors.New("wrong verification code")
	// ErrCodeExpired: the code was right or wrong, it no longer matters: it
	// expired (Config.CodeTTL). Resend sends a new one.
	ErrCodeExpired = errors.New("verification code expired: request a new one")
	// ErrNoCode: no code was sent for the credential (it was stored without
	// verification); Resend sends one.
	ErrNoCode = errors.New("no verification code was sent for this credential: request one")
	// ErrAlreadyVerified: the credential is verified already.
	ErrAlreadyVerified = errors.New("credential already verified")
	// ErrTooManyAttempts: the last wrong code was one too many; the
	// credential was deleted.
	ErrTooManyAttempts = errors.New("too many wrong verification codes: the credential was deleted")
	// ErrNoNotifier: verification was asked for, but the vault has no
	// Notifier to send codes with.
	ErrNoNotifier = errors.New("destination verification is not available: no notifier configured")

	// ErrSecretNotFound: no secret has the id (never stored, already read,
	// or expired).
	ErrSecretNotFound = errors.New("no such secret: it was read already, it expired, or it never existed")
	// ErrInvalidSecret: the secret's value or TTL is out of bounds; the
	// error's text says which.
	ErrInvalidSecret = errors.New("invalid secret")
	// ErrNoSecrets: the vault has no secrets bucket (Deps.Secrets).
	ErrNoSecrets = errors.New("read-once secrets are not available: no secrets bucket configured")

	// ErrUnavailable wraps every failure of the key-value store (NATS
	// unreachable, timeout): retrying later may succeed.
	ErrUnavailable = errors.New("vault store unavailable")
	// ErrBadKey is wrapped by the errors of ParseKey and New for a key that
	// is not "kid:base64(32 bytes)".
	ErrBadKey = errors.New("invalid vault key")
)

// WrongCodeError is a wrong verification code that left the credential in
// place. It matches ErrWrongCode.
type WrongCodeError struct {
	// Remaining is how many more wrong codes delete the credential.
	Remaining int
}

func (e *WrongCodeError) Error() string {
	if e.Remaining == 1 {
		return "wrong verification code: 1 attempt left"
	}
	return fmt.Sprintf("wrong verification code: %d attempts left", e.Remaining)
}

// Is makes errors.Is(err, ErrWrongCode) hold.
func (e *WrongCodeError) Is(target error) bool { return target == ErrWrongCode }

// unavailable wraps a store error in ErrUnavailable; op says what failed.
func unavailable(op string, err error) error {
	return fmt.Errorf("vault: %s: %w: %w", op, ErrUnavailable, err)
}
