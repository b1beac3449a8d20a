package ratelimit

import (
	"context"
	"strings"
	"testing"
)

func TestClientKey(t *testing.T) {
	base := Client{IP: "203.0.113.7"}
	k := base.Key()
	if len(k) != 32 || !validKey(k) {
		t.Fatalf("Key = %q, want 32 hex characters", k)
	}
	if strings.Contains(k, "203") {
		t.Errorf("Key %q shows the address", k)
	}
	if base.Key() != k {
		t.Error("Key is not stable")
	}
	differ := []Client{
		{IP: "203.0.113.8"},
		{IP: "203.0.113.7", Clearance: "tok"},
		{IP: "203.0.113.7", ID: "client-7"},
		{ID: "203.0.113.7"}, // an ID spelled like an address is still an ID
	}
	for _, c := range differ {
		if c.Key() == k {
			t.Errorf("%+v has the key of %+v", c, base)
		}
	}
	// An API client is one client whatever its address.
	if (Client{IP: "1.1.1.1", ID: "x"}).Key() != (Client{IP: "2.2.2.2", ID: "x"}).Key() {
		t.Error("API client's key depends on its address")
	}
	// But not whatever its clearance.
	if (Client{ID: "x", Clearance: "a"}).Key() == (Client{ID: "x", Clearance: "b"}).Key() {
		t.Error("clearances share a key")
	}
	// One IPv6 /64 is one subscriber; IPv4-mapped is IPv4.
	if (Client{IP: "2001:db8:1:2::1"}).Key() != (Client{IP: "2001:db8:1:2:ffff::9"}).Key() {
		t.Error("addresses of one /64 have different keys")
	}
	if (Client{IP: "2001:db8:1:2::1"}).Key() == (Client{IP: "2001:db8:1:3::1"}).Key() {
		t.Error("two /64 networks share a key")
	}
	if (Client{IP: "::ffff:203.0.113.7"}).Key() != k {
		t.Error("IPv4-mapped address has another key")
	}
}

func TestClientContext(t *testing.T) {
	if _, ok := ClientFrom(context.Background()); ok {
		t.Error("empty context has a Client")
	}
	c := Client{IP: "203.0.113.7", ID: "x", Clearance: "y"}
	got, ok := ClientFrom(WithClient(context.Background(), c))
	if !ok || got != c {
		t.Errorf("ClientFrom = %+v, %v", got, ok)
	}
}

// TestClearanceCountsInItsGroupOnly: a clearance earned in one group gives
// a bucket of its own there, and nowhere else; never in the challenge group,
// where it would make every solve pay for the next challenges.
func TestClearanceCountsInItsGroupOnly(t *testing.T) {
	plain := Client{IP: "203.0.113.7"}
	cleared := Client{IP: "203.0.113.7", Clearance: "tok", ClearanceGroup: GroupRegister}
	if cleared.KeyFor(GroupRegister) == plain.KeyFor(GroupRegister) {
		t.Error("the clearance gives no bucket of its own in the group it was earned in")
	}
	for _, g := range []string{GroupAPI, GroupStreaky, GroupChallenge} {
		if cleared.KeyFor(g) != plain.KeyFor(g) {
			t.Errorf("a clearance earned in %s changes the bucket in %s", GroupRegister, g)
		}
	}
	challenged := Client{IP: "203.0.113.7", Clearance: "tok", ClearanceGroup: GroupChallenge}
	if challenged.KeyFor(GroupChallenge) != plain.KeyFor(GroupChallenge) {
		t.Error("a clearance changes the challenge group's bucket")
	}
}
