package ratelimit

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/heraldrelay/herald/internal/clientaddr"
)

// Identifier tells who sent a request. Its fields are read only; it is safe
// for concurrent use once built. A nil *Identifier trusts no proxy and knows
// no API client or clearance.
type Identifier struct {
	// TrustedProxies are the networks of the reverse proxies in front of
	// Herald (Cloudflare's, a load balancer's). Only a peer in one of them is
	// believed about the client's address; such a proxy must overwrite, not
	// pass on, the CF-Connecting-IP a client sends it.
	TrustedProxies []netip.Prefix
	// IPv6Prefix is the length of the IPv6 network that is one client (0:
	// clientaddr.DefaultIPv6Prefix); the connection caps group addresses
	// the same way.
	IPv6Prefix int
	// APIClient returns the identifier of the valid API secret r carries, if
	// any (never the secret itself). Nil: no request is an API client.
	APIClient func(r *http.Request) (id string, ok bool)
	// Clearance returns the valid clearance token r presents for ip, if any,
	// and the route group it was earned in. Nil: clearances are not checked.
	Clearance func(r *http.Request, ip string) (token, group string, ok bool)
}

// ClientIP returns the address of r's client. It is r's peer, unless the peer
// is a trusted proxy: then it is the CF-Connecting-IP header when valid, else
// the rightmost X-Forwarded-For hop that is not a trusted proxy (the hops to
// its right were appended by trusted proxies; anything to its left the client
// may have forged). When every hop is trusted, the leftmost is the client;
// an unparsable hop stops the walk at the trusted hop right of it.
//
// Addresses are returned in canonical form (IPv4-mapped IPv6 unmapped, zone
// dropped). A peer address that does not parse is returned as is.
func (id *Identifier) ClientIP(r *http.Request) string {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return r.RemoteAddr
		}
		return host
	}
	if !id.trusted(peer) {
		return peer.String()
	}
	if a, ok := parseHop(r.Header.Get("CF-Connecting-IP")); ok {
		return a.String()
	}
	client := peer
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		hops := strings.Split(values[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			a, ok := parseHop(hops[j])
			if !ok {
				return client.String()
			}
			client = a
			if !id.trusted(a) {
				return a.String()
			}
		}
	}
	return client.String()
}

// Identify returns r's Client: its address (ClientIP) and that address's
// network (IPv6Prefix), the API client it authenticates as, and its
// clearance.
func (id *Identifier) Identify(r *http.Request) Client {
	c := Client{IP: id.ClientIP(r)}
	if id == nil {
		c.Network = clientaddr.KeyOf(c.IP, 0)
		return c
	}
	c.Network = clientaddr.KeyOf(c.IP, id.IPv6Prefix)
	if id.APIClient != nil {
		if v, ok := id.APIClient(r); ok {
			c.ID = v
		}
	}
	if id.Clearance != nil {
		if v, g, ok := id.Clearance(r, c.IP); ok {
			c.Clearance, c.ClearanceGroup = v, g
		}
	}
	return c
}

func (id *Identifier) trusted(a netip.Addr) bool {
	if id == nil {
		return false
	}
	for _, p := range id.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop parses an address as proxies write it: "1.2.3.4", "2001:db8::1",
// with or without a port ("1.2.3.4:80", "[2001:db8::1]:80") or brackets.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err2 := netip.ParseAddrPort(s)
		if err2 != nil {
			a, err = netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
			if err != nil {
				return netip.Addr{}, false
			}
		} else {
			a = ap.Addr()
		}
	}
	return a.Unmap().WithZone(""), true
}
