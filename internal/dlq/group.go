package dlq

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
)

// Masker names a job's destination without revealing it, for grouping dead
// letters: the same destination must give the same mask in every process
// that shares the masker's key (the console and `herald dlq list --group`),
// and no mask may contain a credential, sealed or open.
// destmask.Masker satisfies it.
type Masker interface {
	Mask(job herald.Job) string
}

// Destinations of letters that cannot name one.
const (
	// DestinationSealed is every destination when no Masker is given: the
	// credentials are not opened, so letters group by cause and channel.
	DestinationSealed = "sealed"
	// DestinationNone is the destination of a letter that holds no valid job.
	DestinationNone = "none (not a valid job)"
)

// GroupKey names a group of dead letters: a cause, a channel and a masked
// destination.
type GroupKey struct {
	Cause       string         `json:"cause"`
	Channel     herald.Channel `json:"channel"`
	Destination string         `json:"destination"`
}

// Group is the dead letters of one GroupKey among those a filter matched.
type Group struct {
	GroupKey
	// Count is the number of letters in the group.
	Count int `json:"count"`
	// Replayable counts the letters holding a valid job.
	Replayable int `json:"replayable"`
	// FirstSeen and LastSeen are the oldest and newest letters' DeadAt.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// LastError is the newest letter's reason (untrusted text: it comes
	// from the destination or the publisher), LastStatusCode its status.
	LastError      string `json:"last_error"`
	LastStatusCode int    `json:"last_status_code,omitempty"`
}

// KeyOf returns the group key of l under m (nil: every destination is
// DestinationSealed).
func KeyOf(l Letter, m Masker) GroupKey {
	k := GroupKey{Cause: l.Cause, Channel: l.Channel, Destination: DestinationSealed}
	switch {
	case !l.Decoded():
		k.Destination = DestinationNone
	case m != nil:
		k.Destination = m.Mask(l.Job)
	}
	return k
}

// grouper accumulates letters into groups; its memory grows with the number
// of groups, not of letters.
type grouper struct {
	m      Masker
	groups map[GroupKey]*Group
}

func newGrouper(m Masker) *grouper { return &grouper{m: m, groups: map[GroupKey]*Group{}} }

func (g *grouper) add(l Letter) {
	k := KeyOf(l, g.m)
	gr := g.groups[k]
	if gr == nil {
		gr = &Group{GroupKey: k, FirstSeen: l.DeadAt}
		g.groups[k] = gr
	}
	gr.Count++
	if l.Decoded() {
		gr.Replayable++
	}
	if l.DeadAt.Before(gr.FirstSeen) {
		gr.FirstSeen = l.DeadAt
	}
	if !l.DeadAt.Before(gr.LastSeen) {
		gr.LastSeen, gr.LastError, gr.LastStatusCode = l.DeadAt, l.Reason, l.StatusCode
	}
}

// sorted returns the groups, largest first; equal counts newest first, then
// by key, so the order is stable.
func (g *grouper) sorted() []Group {
	out := make([]Group, 0, len(g.groups))
	for _, gr := range g.groups {
		out = append(out, *gr)
	}
	slices.SortFunc(out, func(a, b Group) int {
		if c := cmp.Compare(b.Count, a.Count); c != 0 {
			return c
		}
		if c := b.LastSeen.Compare(a.LastSeen); c != 0 {
			return c
		}
		return cmp.Or(strings.Compare(a.Cause, b.Cause), strings.Compare(string(a.Channel), string(b.Channel)),
			strings.Compare(a.Destination, b.Destination))
	})
	return out
}

// GroupLetters groups letters by cause × channel × destination (masked by
// m; nil groups by cause and channel only).
func GroupLetters(letters []Letter, m Masker) []Group {
	g := newGrouper(m)
	for _, l := range letters {
		g.add(l)
	}
	return g.sorted()
}

// Groups returns the groups of the letters f matches (see GroupLetters),
// largest first. f.Limit bounds the letters read, not the groups. Memory
// grows with the number of groups, not of letters.
func (s *Store) Groups(ctx context.Context, f Filter, m Masker) ([]Group, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	st, err := s.stream(ctx)
	if err != nil {
		return nil, err
	}
	g := newGrouper(m)
	if err := s.scan(ctx, st, f, g.add); err != nil {
		return nil, err
	}
	return g.sorted(), nil
}

// GroupFilter returns a filter naming, by sequence, the letters f matches
// whose group key under m is k: Replay and Purge take it to act on one group
// (with Replay's claims, a letter replayed meanwhile by anyone else is Gone,
// never sent twice). It names no letter (and is Empty) when none matches.
func (s *Store) GroupFilter(ctx context.Context, f Filter, m Masker, k GroupKey) (Filter, error) {
	if err := f.Validate(); err != nil {
		return Filter{}, err
	}
	st, err := s.stream(ctx)
	if err != nil {
		return Filter{}, err
	}
	// The group's cause and channel narrow the scan; the destination is
	// compared after masking.
	narrowed := f
	narrowed.Limit = 0
	if narrowed.Channel == "" {
		narrowed.Channel = k.Channel
	}
	var ids []string
	err = s.scan(ctx, st, narrowed, func(l Letter) {
		if KeyOf(l, m) == k {
			ids = append(ids, SeqID(l.Seq))
		}
	})
	if err != nil {
		return Filter{}, err
	}
	out := Filter{IDs: ids}
	if f.Limit > 0 && len(out.IDs) > f.Limit {
		out.IDs = out.IDs[:f.Limit]
	}
	return out, nil
}
