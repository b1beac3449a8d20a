package console

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/internal/breaker"
	"github.com/heraldrelay/herald/internal/dlq"
)

type jobPage struct {
	ID          string
	Searched    bool
	Status      *herald.Status
	Letter      *dlq.Letter
	Destination string
	Query       template.URL
}

func (c *Console) handleJob(w http.ResponseWriter, r *http.Request, sess *session) {
	id := strings.TrimSpace(r.URL.Query().Get("id"))
	p := page{Title: "Job", Nav: "job", CSRF: sess.csrf}
	data := jobPage{ID: id}
	p.Data = &data
	if id == "" {
		c.render(w, r, http.StatusOK, "job", p)
		return
	}
	data.Searched = true
	if !herald.ValidID(id) {
		p.Error = "That is not a job id."
		c.render(w, r, http.StatusBadRequest, "job", p)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if c.deps.Status != nil {
		if st, err := c.deps.Status.Get(ctx, id); err == nil {
			data.Status = &st
		}
	}
	l, err := c.deps.Store.Get(ctx, id)
	switch {
	case err == nil:
		data.Letter = &l
		data.Destination = dlq.KeyOf(l, c.deps.Masker).Destination
		data.Query = filterForm{ID: id}.Query()
	case errors.Is(err, dlq.ErrNotFound), errors.Is(err, dlq.ErrNoStream):
	default:
		c.internalError(w, r, sess, "look up the dead letter", err)
		return
	}
	code := http.StatusOK
	if data.Status == nil && data.Letter == nil {
		code = http.StatusNotFound
	}
	c.render(w, r, code, "job", p)
}

// maxBreakers bounds the breakers the page lists.
const maxBreakers = 200

type breakerRow struct {
	breaker.Open
	Destination string
}

type breakersPage struct {
	Known bool
	Rows  []breakerRow
	Total int
	Now   time.Time
}

func (c *Console) handleBreakers(w http.ResponseWriter, r *http.Request, sess *session) {
	data := breakersPage{Now: c.now()}
	if c.deps.Breakers != nil {
		data.Known, data.Total = true, c.deps.Breakers.OpenCount()
		for _, o := range c.deps.Breakers.Snapshot(maxBreakers) {
			data.Rows = append(data.Rows, breakerRow{Open: o, Destination: maskBreakerKey(o.Key)})
		}
	}
	c.render(w, r, http.StatusOK, "breakers", page{Title: "Breakers", Nav: "breakers", CSRF: sess.csrf, Data: data})
}

// maskBreakerKey shows a breaker's destination key as a mask: the keys
// hold a webhook id and a keyed hash of the token ("discord:<host>/<id>:<hash>"),
// a bot id and keyed hashes of the token and chat
// ("telegram:<bot id>.<hash>:<hash>"); the hashes are keyed per process, so
// they do not match the dead letters' masks. Only the non-secret parts and
// short hashes are shown.
func maskBreakerKey(key string) string {
	short := func(h string) string {
		if len(h) > 8 {
			return h[:8]
		}
		return h
	}
	if rest, ok := strings.CutPrefix(key, "discord:"); ok {
		i := strings.LastIndex(rest, ":")
		j := strings.LastIndex(rest, "/")
		if i > j && j >= 0 {
			id := rest[j+1 : i]
			if id == "" || strings.Trim(id, "0123456789") != "" {
				id = "?"
			}
			return "webhook " + id + " #" + short(rest[i+1:])
		}
	}
	if parts := strings.Split(key, ":"); len(parts) == 3 && parts[0] == "telegram" {
		_, bot, _ := strings.Cut(parts[1], ".")
		return "bot #" + short(bot) + " chat #" + short(parts[2])
	}
	return "(unrecognised destination)"
}
