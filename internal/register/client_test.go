package register

import (
	"net/http/httptest"
	"testing"
)

// TestClientOfGroupsIPv6Networks: one IPv6 host has a /64 of addresses, so
// it is one client for the cap on pending registrations, as it is for the
// rate limiter's buckets; IPv4 addresses are one client each.
func TestClientOfGroupsIPv6Networks(t *testing.T) {
	client := func(remote string) string {
		r := httptest.NewRequest("POST", "/register", nil)
		r.RemoteAddr = remote
		return clientOf(r)
	}
	if a, b := client("[2001:db8:1:2::1]:4000"), client("[2001:db8:1:2:ffff::9]:4001"); a != b {
		t.Errorf("two addresses of one /64 are clients %q and %q, want one", a, b)
	}
	if a, b := client("[2001:db8:1:2::1]:4000"), client("[2001:db8:1:3::1]:4000"); a == b {
		t.Errorf("two /64 networks are one client %q", a)
	}
	if a, b := client("192.0.2.1:4000"), client("192.0.2.2:4000"); a == b {
		t.Errorf("two IPv4 addresses are one client %q", a)
	}
}
