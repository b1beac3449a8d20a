package challenge

import (
	"net/http"
)

// clear answers a solved challenge of group: a clearance token for ip, as
// JSON and as the herald_clearance cookie.
func (s *Service) clear(w http.ResponseWriter, r *http.Request, ip, group string) {
	token, exp := s.sign(ip, group, s.cfg.Now())
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
// one), and the route group whose challenge it solved: the clearance counts
// in that group only. A token that is presented and refused is counted in
// herald_clearances_refused_total by reason (malformed, bad_signature,
// expired, wrong_ip); a request without one is not counted.
func (s *Service) Clearance(r *http.Request, ip string) (token, group string, ok bool) {
	now := s.cfg.Now()
	refused := ""
	try := func(t string) bool {
		if t == "" {
			return false
		}
		reason, g := s.check(t, ip, now)
		if reason != "" && refused == "" {
			refused = reason
		}
		if reason == "" {
			token, group = t, g
		}
		return reason == ""
	}
	if try(r.Header.Get(ClearanceHeader)) {
		return token, group, true
	}
	if c, err := r.Cookie(ClearanceCookie); err == nil && try(c.Value) {
		return token, group, true
	}
	if refused != "" {
		s.m.ClearancesRefused.WithLabelValues(refused).Inc()
	}
	return "", "", false
}
