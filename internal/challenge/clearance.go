package challenge

import (
	"net/http"
)

// clear answers a solved challenge: a clearance token for ip, as JSON and as
// the herald_clearance cookie.
func (s *Service) clear(w http.ResponseWriter, r *http.Request, ip string) {
	token, exp := s.sign(ip, s.cfg.Now())
	s.m.ClearancesIssued.Inc()
	http.SetCookie(w, &http.Cookie{
		Name:     ClearanceCookie,
		Value:    token,
		Path:     "/",
		Expires:  exp,
		MaxAge:   int(s.cfg.ClearanceTTL.Seconds()),
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
		Secure:   behindTLS(r),
	})
	writeJSON(w, http.StatusOK, Cleared{Clearance: token, ExpiresAt: exp.UTC()})
}

// behindTLS reports whether the client reached Herald over HTTPS: directly,
// or through a proxy that says so. A client lying about it only keeps its own
// cookie from being sent over plain HTTP.
func behindTLS(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

// Clearance returns the valid clearance token r presents for ip, as the
// X-Herald-Clearance header or the herald_clearance cookie (the first valid
// one). A token that is presented and refused is counted in
// herald_clearances_refused_total by reason (malformed, bad_signature,
// expired, wrong_ip); a request without one is not counted.
func (s *Service) Clearance(r *http.Request, ip string) (string, bool) {
	now := s.cfg.Now()
	refused := ""
	try := func(token string) bool {
		if token == "" {
			return false
		}
		reason := s.check(token, ip, now)
		if reason != "" && refused == "" {
			refused = reason
		}
		return reason == ""
	}
	if t := r.Header.Get(ClearanceHeader); try(t) {
		return t, true
	}
	if c, err := r.Cookie(ClearanceCookie); err == nil && try(c.Value) {
		return c.Value, true
	}
	if refused != "" {
		s.m.ClearancesRefused.WithLabelValues(refused).Inc()
	}
	return "", false
}
