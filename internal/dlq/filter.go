package dlq

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
)

// ErrEmptyFilter is returned by Replay and Purge for a filter that selects
// nothing in particular: set Filter.All to mean every letter.
var ErrEmptyFilter = errors.New("no filter: name letters by id, channel, since, until, cause or reason, or ask for all")

// ErrInvalidFilter is wrapped by every error Filter.Validate returns.
var ErrInvalidFilter = errors.New("invalid filter")

// Filter selects dead letters. A letter matches when it meets every
// condition that is set; the zero Filter (or one with only All) matches every
// letter. Letters are visited in stream order, oldest first.
type Filter struct {
	// All says that matching every letter is intended; Replay and Purge
	// refuse a filter with no other condition unless it is set.
	All bool `json:"all,omitempty"`
	// IDs keeps letters whose job id, or "seq:<stream sequence>", is listed.
	IDs []string `json:"ids,omitempty"`
	// Channel keeps letters filed under this channel (herald.dlq.<Channel>).
	Channel herald.Channel `json:"channel,omitempty"`
	// Since keeps letters stored at or after this time.
	Since time.Time `json:"since,omitzero"`
	// Until keeps letters stored before this time.
	Until time.Time `json:"until,omitzero"`
	// Cause keeps letters whose cause (consumer.Cause*) is exactly this,
	// ignoring case.
	Cause string `json:"cause,omitempty"`
	// Reason keeps letters whose reason or cause contains it, ignoring case.
	Reason string `json:"reason,omitempty"`
	// Limit stops after this many matching letters; 0 means no limit.
	Limit int `json:"limit,omitempty"`
}

// Empty reports whether f has no condition and does not say All.
func (f Filter) Empty() bool {
	return !f.All && len(f.IDs) == 0 && f.Channel == "" && f.Since.IsZero() && f.Until.IsZero() && f.Cause == "" && f.Reason == ""
}

// Validate checks the filter's fields; every error wraps ErrInvalidFilter
// and is safe to show a client.
func (f Filter) Validate() error {
	if f.Channel != "" && !f.Channel.Valid() && f.Channel != UnknownChannel {
		return fmt.Errorf("%w: unknown channel %q (want discord, telegram or unknown)", ErrInvalidFilter, oneLine(string(f.Channel), 32))
	}
	if f.Limit < 0 {
		return fmt.Errorf("%w: limit %d is negative", ErrInvalidFilter, f.Limit)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return fmt.Errorf("%w: until %s is not after since %s", ErrInvalidFilter, f.Until.UTC().Format(time.RFC3339), f.Since.UTC().Format(time.RFC3339))
	}
	for _, id := range f.IDs {
		if _, ok := parseSeqID(id); ok {
			continue
		}
		if !herald.ValidID(id) {
			return fmt.Errorf("%w: %q is neither a job id nor seq:<number>", ErrInvalidFilter, oneLine(id, 70))
		}
	}
	return nil
}

// parseSeqID returns n for "seq:<n>", n > 0.
func parseSeqID(id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, seqPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return n, true
}

// matcher is a compiled Filter.
type matcher struct {
	f      Filter
	jobIDs map[string]bool
	seqs   map[uint64]bool
	reason string
}

func newMatcher(f Filter) *matcher {
	m := &matcher{f: f, reason: strings.ToLower(f.Reason)}
	if len(f.IDs) > 0 {
		m.jobIDs = map[string]bool{}
		m.seqs = map[uint64]bool{}
		for _, id := range f.IDs {
			if n, ok := parseSeqID(id); ok {
				m.seqs[n] = true
			} else {
				m.jobIDs[id] = true
			}
		}
	}
	return m
}

// onlySeqs reports whether the filter names letters by sequence alone, so
// they can be fetched directly instead of scanning the stream.
func (m *matcher) onlySeqs() bool { return len(m.seqs) > 0 && len(m.jobIDs) == 0 }

func (m *matcher) match(l *Letter) bool {
	if m.f.Channel != "" && l.Channel != m.f.Channel {
		return false
	}
	if !m.f.Since.IsZero() && l.DeadAt.Before(m.f.Since) {
		return false
	}
	if !m.f.Until.IsZero() && !l.DeadAt.Before(m.f.Until) {
		return false
	}
	if m.f.Cause != "" && !strings.EqualFold(l.Cause, m.f.Cause) {
		return false
	}
	if m.reason != "" && !strings.Contains(strings.ToLower(l.Reason), m.reason) && !strings.Contains(strings.ToLower(l.Cause), m.reason) {
		return false
	}
	if m.jobIDs != nil && !m.jobIDs[l.JobID] && !m.seqs[l.Seq] {
		return false
	}
	return true
}

// ParseSince reads a --since value: a duration ("90m", "2h", "7d": that long
// before now) or a time (RFC 3339, or a date 2006-01-02 meaning its midnight
// UTC). The empty string is the zero time (no bound).
func ParseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseFloat(days, 64); err == nil && n >= 0 && n <= 36500 {
			return now.Add(-time.Duration(n * 24 * float64(time.Hour))), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%w: since %q is a negative duration", ErrInvalidFilter, s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: since %q is neither a duration (2h, 7d) nor a time (RFC 3339 or 2006-01-02)", ErrInvalidFilter, oneLine(s, 64))
}
