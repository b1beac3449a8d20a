package clientaddr

import (
	"net/netip"
	"testing"
)

func TestKey(t *testing.T) {
	tests := []struct {
		name   string
		ip     string
		prefix int
		want   string
	}{
		{"IPv4 is its own client", "203.0.113.7", 0, "203.0.113.7"},
		{"IPv4 ignores the IPv6 prefix", "203.0.113.7", 48, "203.0.113.7"},
		{"IPv4-mapped is IPv4", "::ffff:203.0.113.7", 0, "203.0.113.7"},
		{"IPv6 by /64 by default", "2001:db8:1:2:aaaa::1", 0, "2001:db8:1:2::/64"},
		{"IPv6 by a configured /48", "2001:db8:1:2:aaaa::1", 48, "2001:db8:1::/48"},
		{"IPv6 by /128 is per address", "2001:db8:1:2::1", 128, "2001:db8:1:2::1/128"},
		{"the zone is dropped", "fe80::1%eth0", 0, "fe80::/64"},
		{"loopback", "::1", 0, "::/64"},
		{"not an address", "unix-socket", 0, "unix-socket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := KeyOf(tc.ip, tc.prefix); got != tc.want {
				t.Errorf("KeyOf(%q, %d) = %q, want %q", tc.ip, tc.prefix, got, tc.want)
			}
		})
	}
	// The point of grouping: every address of one /64 is one client, the
	// next /64 is another.
	if KeyOf("2001:db8:1:2::1", 0) != KeyOf("2001:db8:1:2:ffff:ffff:ffff:ffff", 0) {
		t.Error("two addresses of one /64 are two clients")
	}
	if KeyOf("2001:db8:1:2::1", 0) == KeyOf("2001:db8:1:3::1", 0) {
		t.Error("two /64 networks are one client")
	}
	if Key(netip.Addr{}, 0) != "" {
		t.Error("the invalid address has a key")
	}
}

func TestCheckIPv6Prefix(t *testing.T) {
	for _, ok := range []int{0, 32, 48, 56, 64, 128} {
		if err := CheckIPv6Prefix(ok); err != nil {
			t.Errorf("/%d: %v", ok, err)
		}
	}
	for _, bad := range []int{-1, 1, 31, 129} {
		if CheckIPv6Prefix(bad) == nil {
			t.Errorf("/%d accepted", bad)
		}
	}
}
