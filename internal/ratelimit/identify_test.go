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
	if c := id.Identify(r); c != (Client{IP: "10.0.0.1", Network: "10.0.0.1"}) {
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
	if c := id.Identify(r); c != (Client{IP: "198.51.100.1", Network: "198.51.100.1"}) {
		t.Errorf("anonymous: %+v", c)
	}
	if gotIP != "198.51.100.1" {
		t.Errorf("clearance checked for %q, want the client's address", gotIP)
	}
	r.Header.Set("X-API-Secret", "ok")
	r.Header.Set("X-Herald-Clearance", "tok")
	if c := id.Identify(r); c != (Client{IP: "198.51.100.1", Network: "198.51.100.1", ID: "client-1", Clearance: "tok", ClearanceGroup: GroupAPI}) {
		t.Errorf("authenticated with clearance: %+v", c)
	}
}

// TestIdentifyGroupsIPv6 checks that the buckets count an IPv6 client by its
// network, of Identifier.IPv6Prefix bits (the connection caps' setting), and
// an IPv4 one by its address.
func TestIdentifyGroupsIPv6(t *testing.T) {
	key := func(id *Identifier, remote string) string {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		return id.Identify(r).KeyFor(GroupAPI)
	}
	tests := []struct {
		name   string
		prefix int
		a, b   string
		same   bool
	}{
		{"one /64 by default", 0, "[2001:db8:1:2::1]:1", "[2001:db8:1:2:ffff::9]:2", true},
		{"two /64s by default", 0, "[2001:db8:1:2::1]:1", "[2001:db8:1:3::1]:1", false},
		{"two /64s of one configured /48", 48, "[2001:db8:1:2::1]:1", "[2001:db8:1:3::1]:1", true},
		{"two /48s", 48, "[2001:db8:1:2::1]:1", "[2001:db8:2:2::1]:1", false},
		{"IPv4 stays per address", 48, "203.0.113.7:1", "203.0.113.8:1", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := &Identifier{IPv6Prefix: tc.prefix}
			if got := key(id, tc.a) == key(id, tc.b); got != tc.same {
				t.Errorf("%s and %s share a bucket: %v, want %v", tc.a, tc.b, got, tc.same)
			}
		})
	}
	// A Client built without an Identifier keys as the default does.
	var none *Identifier
	if key(none, "[2001:db8:1:2::1]:1") != (Client{IP: "2001:db8:1:2::1"}).KeyFor(GroupAPI) {
		t.Error("a Client without Network keys differently from the default")
	}
}

func TestGroupOf(t *testing.T) {
	for path, want := range map[string]string{
		"/send-notification":         GroupStreaky,
		"/v1":                        GroupAPI,
		"/v1/notifications":          GroupAPI,
		"/v1/notifications/abc":      GroupAPI,
		"/admin/dlq":                 GroupAPI,
		"/console/login":             GroupAPI,
		"/console":                   GroupAPI,
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
