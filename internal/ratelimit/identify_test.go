package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	id := &Identifier{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8:ffff::/48"),
	}}
	tests := []struct {
		name   string
		remote string
		cf     string
		xff    []string
		want   string
	}{
		{"untrusted peer", "203.0.113.7:1234", "", nil, "203.0.113.7"},
		{"untrusted peer, forged CF", "203.0.113.7:1234", "198.51.100.1", nil, "203.0.113.7"},
		{"untrusted peer, forged XFF", "203.0.113.7:1234", "", []string{"198.51.100.1"}, "203.0.113.7"},
		{"trusted peer, CF", "10.0.0.1:1234", "198.51.100.1", []string{"192.0.2.9"}, "198.51.100.1"},
		{"trusted peer, CF IPv6", "10.0.0.1:1234", " 2001:db8::5 ", nil, "2001:db8::5"},
		{"trusted peer, bad CF, XFF", "10.0.0.1:1234", "nonsense", []string{"192.0.2.9"}, "192.0.2.9"},
		{"trusted peer, no headers", "10.0.0.1:1234", "", nil, "10.0.0.1"},
		{"XFF rightmost untrusted", "10.0.0.1:1234", "", []string{"1.1.1.1, 192.0.2.9, 10.0.0.2"}, "192.0.2.9"},
		{"XFF split over headers", "10.0.0.1:1234", "", []string{"1.1.1.1, 192.0.2.9", "10.0.0.3", "10.0.0.2"}, "192.0.2.9"},
		{"XFF all trusted", "10.0.0.1:1234", "", []string{"10.9.9.9, 10.0.0.2"}, "10.9.9.9"},
		{"XFF garbage stops the walk", "10.0.0.1:1234", "", []string{"1.1.1.1, unknown, 10.0.0.2"}, "10.0.0.2"},
		{"XFF with ports", "10.0.0.1:1234", "", []string{"192.0.2.9:5555, [2001:db8:ffff::1]:80"}, "192.0.2.9"},
		{"XFF bracketed IPv6", "10.0.0.1:1234", "", []string{"[2001:db8::7]"}, "2001:db8::7"},
		{"trusted IPv6 peer", "[2001:db8:ffff::1]:443", "", []string{"192.0.2.9"}, "192.0.2.9"},
		{"mapped peer", "[::ffff:203.0.113.7]:1", "", nil, "203.0.113.7"},
		{"mapped trusted peer", "[::ffff:10.0.0.1]:1", "198.51.100.1", nil, "198.51.100.1"},
		{"zoned peer", "[fe80::1%eth0]:1", "", nil, "fe80::1"},
		{"unparsable peer", "pipe", "198.51.100.1", nil, "pipe"},
		{"hostname peer", "example.com:80", "", nil, "example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v1/x", nil)
			r.RemoteAddr = tc.remote
			if tc.cf != "" {
				r.Header.Set("CF-Connecting-IP", tc.cf)
			}
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := id.ClientIP(r); got != tc.want {
				t.Errorf("ClientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNilIdentifier(t *testing.T) {
	var id *Identifier
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Set("CF-Connecting-IP", "198.51.100.1")
	if c := id.Identify(r); c != (Client{IP: "10.0.0.1"}) {
		t.Errorf("Identify = %+v", c)
	}
}

func TestIdentify(t *testing.T) {
	var gotIP string
	id := &Identifier{
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		APIClient: func(r *http.Request) (string, bool) {
			return "client-1", r.Header.Get("X-API-Secret") == "ok"
		},
		Clearance: func(r *http.Request, ip string) (string, string, bool) {
			gotIP = ip
			return "tok", GroupAPI, r.Header.Get("X-Herald-Clearance") == "tok"
		},
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "10.0.0.1:1"
	r.Header.Set("CF-Connecting-IP", "198.51.100.1")
	if c := id.Identify(r); c != (Client{IP: "198.51.100.1"}) {
		t.Errorf("anonymous: %+v", c)
	}
	if gotIP != "198.51.100.1" {
		t.Errorf("clearance checked for %q, want the client's address", gotIP)
	}
	r.Header.Set("X-API-Secret", "ok")
	r.Header.Set("X-Herald-Clearance", "tok")
	if c := id.Identify(r); c != (Client{IP: "198.51.100.1", ID: "client-1", Clearance: "tok", ClearanceGroup: GroupAPI}) {
		t.Errorf("authenticated with clearance: %+v", c)
	}
}

func TestGroupOf(t *testing.T) {
	for path, want := range map[string]string{
		"/send-notification":         GroupStreaky,
		"/v1":                        GroupAPI,
		"/v1/notifications":          GroupAPI,
		"/v1/notifications/abc":      GroupAPI,
		"/admin/dlq":                 GroupAPI,
		"/register":                  GroupRegister,
		"/register/discord":          GroupRegister,
		"/register-bot":              GroupRegister,
		"/challenge/verify":          GroupChallenge,
		"/challenge":                 GroupChallenge,
		"/health":                    "",
		"/readyz":                    "",
		"/metrics":                   "",
		"/":                          "",
		"/v1x":                       "",
		"/x/../v1/notifications":     GroupAPI,
		"/./send-notification":       GroupStreaky,
		"/send-notification/":        GroupStreaky,
		"/health/../admin/dlq/items": GroupAPI,
	} {
		r := httptest.NewRequest(http.MethodPost, "http://h"+path, nil)
		if got := GroupOf(r); got != want {
			t.Errorf("GroupOf(%s) = %q, want %q", path, got, want)
		}
	}
}
