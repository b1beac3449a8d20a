// Package clientaddr says which client an IP address belongs to, for every
// cap and bucket Herald shares out per client address (connections, rate
// limits): an IPv4 address is one client; an IPv6 address is one client
// together with every other address of its network, a /64 by default, since
// a subscriber is usually handed a whole /64 (or more) and may use any of its
// addresses.
package clientaddr

import (
	"fmt"
	"net/netip"
)

// DefaultIPv6Prefix is the IPv6 network length that is one client when none
// is configured: a /64, the smallest network a subscriber is handed.
const DefaultIPv6Prefix = 64

// MinIPv6Prefix is the shortest IPv6 prefix accepted: a shorter one would
// make whole providers one client.
const MinIPv6Prefix = 32

// CheckIPv6Prefix reports a prefix length outside MinIPv6Prefix..128; 0
// (DefaultIPv6Prefix) is accepted.
func CheckIPv6Prefix(bits int) error {
	if bits != 0 && (bits < MinIPv6Prefix || bits > 128) {
		return fmt.Errorf("IPv6 client prefix /%d out of range /%d../128", bits, MinIPv6Prefix)
	}
	return nil
}

// Key is the client a is: a itself for IPv4 (an IPv4-mapped IPv6 address
// included), a's network of ipv6Prefix bits for IPv6 (0: DefaultIPv6Prefix),
// its zone dropped. An invalid a is "".
func Key(a netip.Addr, ipv6Prefix int) string {
	if !a.IsValid() {
		return ""
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	if ipv6Prefix == 0 {
		ipv6Prefix = DefaultIPv6Prefix
	}
	p, err := a.Prefix(ipv6Prefix)
	if err != nil {
		return a.String()
	}
	return p.String()
}

// KeyOf is Key of the address ip spells; anything that does not parse as an
// address is its own key.
func KeyOf(ip string, ipv6Prefix int) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	return Key(a, ipv6Prefix)
}
