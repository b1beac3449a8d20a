package breaker

// entryBytes is what one breaker costs on the heap besides its key, as
// TestBreakerBytesCoverHeap measures it (go test ./internal/breaker -run
// BreakerBytesCoverHeap -v prints the figure): the entry, gobreaker's
// two-step breaker with its counts and the closures it calls, the LRU list
// element and the breaker's share of the map. Rounded up, so the budget errs
// on the side of holding less.
const entryBytes = 560 // measured 522

// minMaxMemory is room for a few breakers.
const minMaxMemory = 64 << 10
