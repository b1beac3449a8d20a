// Package channels delivers herald.Notifications to their destinations: Discord
// webhooks (Discord) and Telegram bots (Telegram).
//
// Every channel has the same contract, which the consumer relies on:
//
//   - CheckTarget validates a destination's credentials without any I/O. Its
//     errors wrap both ErrInvalidTarget and herald.ErrPermanent.
//   - Destination returns a stable key for per-destination state (breakers,
//     pacing) that never contains a credential.
//   - Send makes one HTTP call (Telegram: two when a group migrated) and
//     classifies the answer once, at the boundary: nil when delivered; a
//     *herald.RetryAfterError when the destination asked to be called later; an
//     error wrapping herald.ErrPermanent when it can never succeed; any other
//     error (a *herald.DestinationError or a transport error) is transient.
//
// No error text, and no value a Send or CheckTarget returns, contains a webhook
// URL, a bot token or a chat id: transport errors are rebuilt without the
// request URL, and destination descriptions are redacted.
//
// Channels are safe for concurrent use. Outbound requests never follow
// redirects, so a destination cannot bounce the relay to a host outside the
// allow-list. Package fake provides scriptable test servers for both.
package channels
