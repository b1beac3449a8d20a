// Package admin is Herald's operator HTTP API under /admin/: the dead
// letters (list, show, replay, purge), behind a shared secret.
//
// Every route answers JSON. Errors are {"error":{"code":"...","message":"..."}}
// with a stable code; internal details are logged, never echoed. The API is
// off unless admin.secret is set: then every /admin/ path answers 404, as if
// it did not exist.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/heraldrelay/herald/internal/dlq"
)

// MinSecretLen is the shortest admin secret accepted: the API can replay and
// delete every dead letter, so a guessable secret is refused.
const MinSecretLen = 16

// Prefix is where the API lives; mount Handler there (mux.Handle(Prefix, h)).
const Prefix = "/admin/"

// Config configures the admin API.
type Config struct {
	// Secrets are the accepted admin secrets (admin.secret; several allow a
	// rotation). Empty disables the API.
	Secrets []string
}

// Enabled reports whether any secret is configured.
func (c Config) Enabled() bool { return len(c.Secrets) > 0 }

// Validate checks the secrets; the error never contains one.
func (c Config) Validate() error {
	for i, s := range c.Secrets {
		if strings.TrimSpace(s) != s || len(s) < MinSecretLen {
			return fmt.Errorf("admin: secret #%d must be at least %d characters without surrounding spaces", i+1, MinSecretLen)
		}
	}
	return nil
}

// Server serves the admin API. It is safe for concurrent use.
type Server struct {
	enabled bool
	digests [][sha256.Size]byte
	store   *dlq.Store
	log     *slog.Logger
	handler http.Handler
}

// New returns the admin API over store. With no secret configured the API is
// disabled and store may be nil. logger receives one line per replay or
// purge and every internal error (nil discards them); no line holds a secret.
func New(cfg Config, store *dlq.Store, logger *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{enabled: cfg.Enabled(), store: store, log: logger.With("component", "admin")}
	if s.enabled && store == nil {
		return nil, errors.New("admin: a dead-letter store is required when the API is enabled")
	}
	for _, sec := range cfg.Secrets {
		s.digests = append(s.digests, sha256.Sum256([]byte(sec)))
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the API's router. Its routes carry their full paths
// (/admin/...), so mount it at Prefix on a mux without stripping:
//
//	GET  /admin/dlq?channel=&since=&until=&cause=&reason=&limit=&id=   list letters
//	GET  /admin/dlq/{id}                                 one letter (job id or seq:<n>)
//	POST /admin/dlq/replay   {"all","ids","channel","since","until","cause","reason","limit","rate","dry_run"}
//	POST /admin/dlq/purge    {"all","ids","channel","since","until","cause","reason","limit"}
//
// Requests need "Authorization: Bearer <secret>" or "X-Admin-Secret:
// <secret>"; without it every path (known or not) answers 401. When the API
// is disabled every path answers 404.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	if !s.enabled {
		return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusNotFound, "not_found", "not found")
		})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/dlq", s.handleList)
	mux.HandleFunc("GET /admin/dlq/{id}", s.handleShow)
	mux.HandleFunc("POST /admin/dlq/replay", s.handleReplay)
	mux.HandleFunc("POST /admin/dlq/purge", s.handlePurge)
	mux.HandleFunc("/admin/dlq", methodNotAllowed("GET"))
	mux.HandleFunc("/admin/dlq/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "replay", "purge":
			methodNotAllowed("GET, POST")(w, r)
		default:
			methodNotAllowed("GET")(w, r)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such admin route")
	})
	return s.authenticate(mux)
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed; use "+allow)
	}
}

// authenticate lets through requests carrying an admin secret.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald admin"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong admin secret")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized checks X-Admin-Secret, else "Authorization: Bearer <secret>",
// against every configured secret in constant time.
func (s *Server) authorized(r *http.Request) bool {
	given := r.Header.Get("X-Admin-Secret")
	if given == "" {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		given = strings.TrimSpace(token)
	}
	if given == "" {
		return false
	}
	// Fixed-length digests keep the secrets' lengths out of the timing, and
	// no early exit keeps out which one matched.
	d := sha256.Sum256([]byte(given))
	match := 0
	for i := range s.digests {
		match |= subtle.ConstantTimeCompare(d[:], s.digests[i][:])
	}
	return match == 1
}
