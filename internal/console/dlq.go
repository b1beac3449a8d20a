package console

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/dlq"
)

// maxGroups bounds the groups one page shows.
const maxGroups = 500

// filterForm is the dead-letter filter as the pages carry it (query or
// form): since and until take what `herald dlq --since` takes.
type filterForm struct {
	Since, Until, Cause, Channel, ID string
	// The group, when the action is on one group.
	GCause, GChannel, GDest string
}

func readFilterForm(v url.Values) filterForm {
	g := func(k string) string { return strings.TrimSpace(v.Get(k)) }
	return filterForm{Since: g("since"), Until: g("until"), Cause: g("cause"), Channel: g("channel"), ID: g("id"),
		GCause: v.Get("g_cause"), GChannel: v.Get("g_channel"), GDest: v.Get("g_dest")}
}

// Group reports whether the form names a group.
func (f filterForm) Group() bool { return f.GChannel != "" || f.GDest != "" || f.GCause != "" }

// Key is the named group's key.
func (f filterForm) Key() dlq.GroupKey {
	return dlq.GroupKey{Cause: f.GCause, Channel: herald.Channel(f.GChannel), Destination: f.GDest}
}

// Query encodes the filter (without the group) for links: url.Values
// encoded, so safe as a URL's query.
func (f filterForm) Query() template.URL {
	v := url.Values{}
	for k, s := range map[string]string{"since": f.Since, "until": f.Until, "cause": f.Cause, "channel": f.Channel, "id": f.ID} {
		if s != "" {
			v.Set(k, s)
		}
	}
	return template.URL(v.Encode()) //nolint:gosec // url.Values.Encode escapes every value
}

// Filtered reports whether any condition is set.
func (f filterForm) Filtered() bool { return f.Query() != "" }

// filter parses the form; its errors are safe to show.
func (f filterForm) filter(now time.Time) (dlq.Filter, error) {
	since, err := dlq.ParseSince(f.Since, now)
	if err != nil {
		return dlq.Filter{}, err
	}
	until, err := dlq.ParseSince(f.Until, now)
	if err != nil {
		return dlq.Filter{}, errors.New(strings.Replace(err.Error(), "since", "until", 1))
	}
	out := dlq.Filter{Since: since, Until: until, Cause: f.Cause, Channel: herald.Channel(f.Channel)}
	if f.ID != "" {
		out.IDs = []string{f.ID}
	}
	return out, out.Validate()
}

// selection is the filter an action works on: the group's letters, or
// every letter matching the filter (all of them when it has no condition).
func (c *Console) selection(ctx context.Context, f filterForm) (dlq.Filter, error) {
	filter, err := f.filter(c.now())
	if err != nil {
		return dlq.Filter{}, err
	}
	if f.Group() {
		return c.deps.Store.GroupFilter(ctx, filter, c.deps.Masker, f.Key())
	}
	if filter.Empty() {
		filter.All = true
	}
	return filter, nil
}

type dlqPage struct {
	Form   filterForm
	Groups []dlq.Group
	More   int
	Total  int
	Replay *replayState
}

func (c *Console) handleDLQ(w http.ResponseWriter, r *http.Request, sess *session) {
	form := readFilterForm(r.URL.Query())
	p := page{Title: "Dead letters", Nav: "dlq", CSRF: sess.csrf}
	data := dlqPage{Form: form, Replay: c.replayStatus()}
	p.Data = &data
	p.Refresh = data.Replay != nil && data.Replay.Running()
	filter, err := form.filter(c.now())
	if err != nil {
		p.Error = err.Error()
		c.render(w, r, http.StatusBadRequest, "dlq", p)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	groups, err := c.deps.Store.Groups(ctx, filter, c.deps.Masker)
	if err != nil && !errors.Is(err, dlq.ErrNoStream) {
		c.internalError(w, r, sess, "list the dead letters", err)
		return
	}
	for _, g := range groups {
		data.Total += g.Count
	}
	if len(groups) > maxGroups {
		data.More = len(groups) - maxGroups
		groups = groups[:maxGroups]
	}
	data.Groups = groups
	if n := r.URL.Query().Get("purged"); n != "" {
		if k, err := strconv.Atoi(n); err == nil && k >= 0 {
			p.Notice = "Purged " + strconv.Itoa(k) + " dead letters."
		}
	}
	c.render(w, r, http.StatusOK, "dlq", p)
}

type confirmPage struct {
	Form    filterForm
	Action  string
	Count   int
	Skipped int
	Rate    float64
}

// handleConfirm counts what an action would touch (a dry run) and asks
// for confirmation; it changes nothing.
func (c *Console) handleConfirm(w http.ResponseWriter, r *http.Request, sess *session) {
	q := r.URL.Query()
	form := readFilterForm(q)
	action := q.Get("action")
	if action != "replay" && action != "purge" {
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	p := page{Title: "Confirm", Nav: "dlq", CSRF: sess.csrf}
	data := confirmPage{Form: form, Action: action, Rate: c.cfg.ReplayRate}
	p.Data = &data
	filter, err := c.selection(ctx, form)
	if err != nil {
		if errors.Is(err, dlq.ErrInvalidFilter) {
			p.Error = err.Error()
			c.render(w, r, http.StatusBadRequest, "confirm", p)
			return
		}
		c.internalError(w, r, sess, "count the dead letters", err)
		return
	}
	if !filter.Empty() {
		res, err := c.deps.Store.Replay(ctx, filter, dlq.ReplayOptions{DryRun: true})
		if err != nil && !errors.Is(err, dlq.ErrNoStream) {
			c.internalError(w, r, sess, "count the dead letters", err)
			return
		}
		data.Count, data.Skipped = res.Replayed, res.Skipped
		if action == "purge" {
			data.Count += res.Skipped
		}
	}
	c.render(w, r, http.StatusOK, "confirm", p)
}

// replayState is a background replay's progress.
type replayState struct {
	Started  time.Time
	Finished time.Time
	Done     int
	Total    int
	Result   dlq.ReplayResult
	Err      string
}

// Running reports whether the replay is still going.
func (s *replayState) Running() bool { return s.Finished.IsZero() }

// replayStatus returns a copy of the current or last replay's state.
func (c *Console) replayStatus() *replayState {
	c.replayM.Lock()
	defer c.replayM.Unlock()
	if c.replay == nil {
		return nil
	}
	cp := *c.replay
	return &cp
}

func (c *Console) handleReplay(w http.ResponseWriter, r *http.Request, sess *session) {
	form := readFilterForm(r.PostForm)
	p := page{Title: "Replay", Nav: "dlq", CSRF: sess.csrf}
	c.replayM.Lock()
	busy := c.replay != nil && c.replay.Running()
	c.replayM.Unlock()
	if busy {
		p.Error = "A replay is running; wait for it to finish."
		p.Data = &dlqPage{Form: form, Replay: c.replayStatus()}
		c.render(w, r, http.StatusConflict, "dlq", p)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	filter, ok := c.selectOrAnswer(ctx, w, r, sess, form, p)
	if !ok {
		return
	}
	st := &replayState{Started: c.now()}
	c.replayM.Lock()
	c.replay = st
	c.replayM.Unlock()
	if filter.Empty() {
		st.Finished = c.now()
	} else {
		c.wg.Add(1)
		go c.runReplay(filter, st)
	}
	c.log.LogAttrs(r.Context(), slog.LevelInfo, "console replay started", slog.Bool("group", form.Group()))
	http.Redirect(w, r, "/console/dlq?"+string(form.Query()), http.StatusSeeOther)
}

// selectOrAnswer is the filter of form (see selection); when there is none,
// it answers the request (400 for a filter that is not valid, else an
// internal error) and ok is false.
func (c *Console) selectOrAnswer(ctx context.Context, w http.ResponseWriter, r *http.Request, sess *session, form filterForm, p page) (filter dlq.Filter, ok bool) {
	filter, err := c.selection(ctx, form)
	if err == nil {
		return filter, true
	}
	if errors.Is(err, dlq.ErrInvalidFilter) {
		p.Error = err.Error()
		p.Data = &dlqPage{Form: form}
		c.render(w, r, http.StatusBadRequest, "dlq", p)
		return filter, false
	}
	c.internalError(w, r, sess, "select the dead letters", err)
	return filter, false
}

// runReplay replays in the background, paced, recording its progress; it
// is owned by the Console (Close waits for it).
func (c *Console) runReplay(filter dlq.Filter, st *replayState) {
	defer c.wg.Done()
	res, err := c.deps.Store.Replay(c.ctx, filter, dlq.ReplayOptions{
		Rate: c.cfg.ReplayRate,
		Progress: func(done, total int) {
			c.replayM.Lock()
			st.Done, st.Total = done, total
			c.replayM.Unlock()
		},
	})
	c.replayM.Lock()
	st.Result, st.Finished = res, c.now()
	if err != nil {
		st.Err = "the replay stopped early; the log says why"
	}
	c.replayM.Unlock()
	attrs := []slog.Attr{slog.Int("replayed", res.Replayed), slog.Int("failed", res.Failed), slog.Int("skipped", res.Skipped), slog.Int("gone", res.Gone)}
	if err != nil {
		attrs = append(attrs, slogErr(err))
	}
	c.log.LogAttrs(context.Background(), slog.LevelInfo, "console replay finished", attrs...)
}

func (c *Console) handlePurge(w http.ResponseWriter, r *http.Request, sess *session) {
	form := readFilterForm(r.PostForm)
	ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
	defer cancel()
	p := page{Title: "Dead letters", Nav: "dlq", CSRF: sess.csrf}
	filter, ok := c.selectOrAnswer(ctx, w, r, sess, form, p)
	if !ok {
		return
	}
	n := 0
	if !filter.Empty() {
		var err error
		n, err = c.deps.Store.Purge(ctx, filter)
		if err != nil {
			c.internalError(w, r, sess, "purge the dead letters", err)
			return
		}
	}
	c.log.LogAttrs(r.Context(), slog.LevelInfo, "console purge", slog.Int("purged", n), slog.Bool("group", form.Group()))
	http.Redirect(w, r, "/console/dlq?"+string(form.Query())+"&purged="+strconv.Itoa(n), http.StatusSeeOther)
}
