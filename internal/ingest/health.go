package ingest

import (
	"context"
	"net/http"
)

// healthBody is what Streaky's proxy answers on /health; kept byte for byte
// so its monitors keep working.
type healthBody struct {
	Status  string `json:"status"`
	Service string `json:"service"`
	Version string `json:"version"`
}

var streakyHealth = healthBody{Status: "healthy", Service: "streaky-notification-proxy", Version: "0.1.0"}

// handleRoot answers GET / with "OK", for load balancers that probe /.
func (s *Server) handleRoot(w http.ResponseWriter, _ *http.Request) {
	writePlain(w, http.StatusOK, "OK")
}

// handleHealth answers GET /health: the process is up. Unlike Streaky's proxy
// it needs no API secret (it reveals nothing), which a Worker never notices
// since it never calls it.
func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	s.versionHeader(w)
	writeJSON(w, http.StatusOK, streakyHealth)
}

type readyBody struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// handleReady answers GET /readyz: 200 when Deps.Ready says jobs can be
// stored, 503 otherwise.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	s.versionHeader(w)
	if s.ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.ready(ctx); err != nil {
			s.log.WarnContext(r.Context(), "not ready", "err", err.Error())
			w.Header().Set("Retry-After", retryAfterSeconds)
			// Ready's errors describe the NATS connection and stream
			// (queue.Ready), never a credential.
			writeJSON(w, http.StatusServiceUnavailable, readyBody{Status: "unavailable", Error: err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, readyBody{Status: "ready"})
}

func (s *Server) versionHeader(w http.ResponseWriter) {
	if s.cfg.Version != "" {
		w.Header().Set("X-Herald-Version", s.cfg.Version)
	}
}
