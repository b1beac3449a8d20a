// Package pacing holds sends back so that they stay within what Discord and
// Telegram allow, instead of sending and collecting 429s: a relay that
// collects 429s from Discord gets its IP address banned.
//
// # Discord
//
// Per webhook, the Pacer learns the rate-limit bucket from each response's
// X-RateLimit-Limit, -Remaining, -Reset-After and -Bucket headers (through
// ObserveDiscord, set as channels.DiscordConfig.Observe) and reserves a slot
// before each send. Until the first response of a webhook has taught its
// bucket, one request at a time is in flight; then up to the bucket's
// remaining requests go at once, and the next waits until the window resets
// (plus 50 ms). State is keyed by destination ("discord:<host>/<webhook id>:<token hash>"), with
// the bucket hash kept beside it: Discord gives every webhook the same hash
// for the same route while limiting each webhook on its own.
//
// Over all webhooks, at most channels.discord.global_rate requests go out in
// any second (Discord's per-IP global limit; a sliding window, so bursts up
// to the rate are allowed but a second never holds more). A global 429, or a
// 429 without rate-limit headers (a Cloudflare ban), pauses every Discord
// send for as long as Discord asked.
//
// Invalid responses (401, 403, and 429 other than scope "shared") are counted
// over a sliding InvalidWindow (10 minutes) in 60 buckets. When the count
// reaches channels.discord.invalid_budget (5,000, half of Cloudflare's ban
// threshold), every Discord send is suspended until the window drops below
// it: one Warn line when the suspension starts, one Info line when the first
// send after its end finds it over, and the herald_channel_suspended
// {channel="discord"} gauge at 1 meanwhile.
//
// # Telegram
//
// Each chat has a rate (channels.telegram.per_chat_rate, 1/s; groups,
// supergroups and channels, whose ids are negative or @usernames,
// channels.telegram.per_group_rate, 20/min) and each bot one over all its
// chats (channels.telegram.per_bot_rate, 30/s), all token buckets without a
// burst. A 429 makes its chat wait the retry_after Telegram gave and halves
// the chat's rate for a minute; a second 429 on any of the bot's chats within
// a minute halves the bot's rate too (down to an eighth at most). The chat
// id itself is never kept: state is keyed by the destination key, which
// holds only a hash of it, and the middleware reads only the id's sign.
//
// # Holding and handing back
//
// A send that must wait at most Config.MaxHold (2 s) in total is held by the
// worker, then sent. A longer wait returns *herald.RetryAfterError{After:
// wait, Err: herald.ErrPaced}: the consumer redelivers the job after exactly
// that wait (NakWithDelay) without using one of its attempts, and the worker
// is free meanwhile. For a full Discord webhook, the wait is until a coming
// window that has room for the job: the first jobs handed back, as many as
// the bucket allows, return at the next reset, as many again one window
// later, and so on, so that a backlog
// for one webhook is handed back about once per job rather than once per
// window it waits. The Pacer is best placed as the innermost middleware,
// right before the send, so that a slot is taken as late as possible; it
// treats a RetryAfterError wrapping herald.ErrPaced or herald.ErrCircuitOpen
// from below it as "not sent" and gives the slot back.
//
// # Several worker processes
//
// Pacing state lives in each process's memory and is not shared. With N
// worker processes:
//
//   - Per webhook, each process starts by allowing one request, then as many
//     as Discord reports remaining. Discord's headers count every process's
//     requests, and a response that reports more used than this process sent
//     is taken into account, so processes correct one another after their
//     first responses; but requests started at the same moment by different
//     processes can together exceed a bucket, and draw a 429 (which then
//     blocks the webhook in the process that got it). Expect a few 429s per
//     window when many processes send to one webhook at once.
//   - The global rate is per process: N processes behind one IP address
//     together send up to N × global_rate. Set channels.discord.global_rate
//     to 50/N. The invalid-request budget is per process as well: set it to
//     5000/N to keep the sum under Cloudflare's threshold.
//   - Telegram's per-chat and per-bot rates are per process too: jobs for one
//     chat spread over N processes can reach N × the chat's rate. Telegram's
//     429s then tighten each process that receives one.
//
// Jobs for one destination are spread over processes by JetStream, so none
// of this matters with one worker process, the default of herald serve.
//
// # Memory
//
// Per-destination state is kept in bounded maps, one per kind (webhooks,
// chats, bots), each within Config.MaxMemory bytes (8 MiB) and
// Config.MaxDestinations entries, evicting the least recently used entry
// that has no send in flight. An entry is accounted what the heap holds for
// it (288 bytes for a webhook, 336 for a chat or a bot, plus its key of
// about 64), so the bound holds in bytes however many destinations jobs
// name. A webhook is kept only once a response taught its bucket, and is
// forgotten as soon as it answers 401, 403 or 404 (a bad token, a deleted
// webhook: its jobs are dead-lettered), so a flood of jobs to dead webhooks
// leaves nothing behind. An evicted or forgotten webhook starts over as
// unknown: one request at a time until its bucket is learned again; an
// evicted chat or bot starts with a full token bucket (one send at once).
package pacing
