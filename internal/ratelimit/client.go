package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/heraldrelay/herald/internal/clientaddr"
)

// Client is who a request is, as far as rate limiting goes.
type Client struct {
	// IP is the client's address: the peer's, or the one a trusted proxy
	// reports (see Identifier.ClientIP).
	IP string
	// Network is the client IP's network as the buckets count it (see
	// clientaddr.Key; Identifier.IPv6Prefix): IP itself for IPv4, its /64
	// (or configured) network for IPv6. Empty: IP's with the default prefix.
	Network string
	// ID identifies the API secret the request carries, when it carries a
	// valid one; it is an identifier derived from the secret, never the
	// secret. Empty otherwise.
	ID string
	// Clearance is the valid clearance token the request presents (a solved
	// challenge), or empty.
	Clearance string
	// ClearanceGroup is the route group whose challenge Clearance solved:
	// the clearance gives a bucket of its own there only (see KeyFor).
	ClearanceGroup string
}

// keyPrefix separates Client.Key's hash from every other hash Herald makes.
const keyPrefix = "herald ratelimit client\x00"

// Key is the client's bucket key: a hex SHA-256 digest (32 characters, safe
// as a key-value store key) of the client's ID when it has one, else its IP,
// plus its clearance token. Every IPv6 address of one network (Network: a
// /64, which one subscriber usually holds whole, unless configured
// otherwise) shares a key. A clearance gives a client
// a bucket of its own, apart from everyone else behind the same address.
//
// The digest is not keyed: it hides IDs and tokens, but an IPv4 address can
// be found again by hashing all 2^32 of them, so the store's keys are as
// personal as the addresses and expire with the store's TTL.
func (c Client) Key() string { return c.key(c.Clearance) }

// KeyFor is the client's bucket key in group: Key, with the clearance only
// when it was earned in group. A solved challenge frees the client in the
// group that challenged it, never in the others, and never in the
// challenge group itself (where a clearance would make every solve pay for
// the next challenges).
func (c Client) KeyFor(group string) string {
	if c.Clearance != "" && (c.ClearanceGroup != group || group == GroupChallenge) {
		return c.key("")
	}
	return c.key(c.Clearance)
}

func (c Client) key(clearance string) string {
	h := sha256.New()
	h.Write([]byte(keyPrefix))
	if c.ID != "" {
		h.Write([]byte("id\x00"))
		h.Write([]byte(c.ID))
	} else {
		h.Write([]byte("ip\x00"))
		network := c.Network
		if network == "" {
			network = clientaddr.KeyOf(c.IP, 0)
		}
		h.Write([]byte(network))
	}
	h.Write([]byte{0})
	h.Write([]byte(clearance))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

type clientKey struct{}

// WithClient returns ctx carrying c; the Middleware puts the identified
// client in every limited request's context.
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFrom returns the Client ctx carries, if any.
func ClientFrom(ctx context.Context) (Client, bool) {
	c, ok := ctx.Value(clientKey{}).(Client)
	return c, ok
}
