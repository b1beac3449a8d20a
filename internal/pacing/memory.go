package pacing

// What one entry of per-destination state costs on the heap besides its key,
// as TestCacheBytesCoverHeap measures it (go test ./internal/pacing -run
// CacheBytesCoverHeap -v prints the figures): the value, simplelru's list
// element and the entry's share of the map, whose buckets are at worst half
// full right after they doubled. The figures are rounded up, so the budget
// errs on the side of holding less.
const (
	discordDestBytes = 288 // measured 265
	tgChatBytes      = 336 // measured 310
	tgBotBytes       = 336 // measured 311
	// badDestBytes is one destination remembered as having refused a
	// verification message (expirable.LRU keeps an element, a map entry
	// and a second map entry in its expiry bucket).
	badDestBytes = 176 // measured 156
	// keyBytes is what a destination key is accounted when its length is
	// not known beforehand: "discord:discord.com/<19-digit id>:<16 hex>" is
	// 56 bytes, and the allocator rounds it to 64.
	keyBytes = 64
)

// badDestinations is how many destinations that refused a verification
// message are remembered: as many as MaxDestinations and MaxMemory allow.
func badDestinations(c Config) int {
	return int(min(int64(c.MaxDestinations), c.MaxMemory/(badDestBytes+keyBytes)))
}
