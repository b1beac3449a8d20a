package challenge

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// A clearance token is six dot-separated fields:
//
//	kid.exp.grp.tid.iph.sig
//
// kid names the signing key, exp is the expiry in Unix seconds, grp the route
// group whose challenge was solved (the clearance counts there only), tid 12 random
// bytes (every token is distinct), iph the first 12 bytes of
// HMAC-SHA256(key, ipLabel + ip) (binds the token to the client's address
// without revealing it), and sig HMAC-SHA256(key, tokenLabel + the first four
// fields joined by dots). Binary fields are unpadded base64url.
const (
	tokenLabel  = "herald clearance v2\x00"
	maxGroupLen = 16
	ipLabel     = "herald clearance ip\x00"
	tidLen      = 12
	iphLen      = 12
	maxTokenLen = 256
)

// Reasons a clearance token is refused; the reason label of
// herald_clearances_refused_total.
const (
	RefusedMalformed    = "malformed"
	RefusedBadSignature = "bad_signature"
	RefusedExpired      = "expired"
	RefusedWrongIP      = "wrong_ip"
)

var b64 = base64.RawURLEncoding

// sign returns a clearance token for ip in group, signed with the first key,
// and its expiry.
func (s *Service) sign(ip, group string, now time.Time) (string, time.Time) {
	k := s.keys[0]
	exp := now.Add(s.cfg.ClearanceTTL).Truncate(time.Second)
	tid := make([]byte, tidLen)
	rand.Read(tid) // never fails (crypto/rand panics rather than return an error)
	payload := k.kid + "." + strconv.FormatInt(exp.Unix(), 10) + "." + group + "." + b64.EncodeToString(tid) + "." + b64.EncodeToString(ipMAC(k.secret, ip))
	return payload + "." + b64.EncodeToString(tokenMAC(k.secret, payload)), exp
}

// check returns "" and the token's group when token is a valid clearance for
// ip at now, else the reason it is refused.
func (s *Service) check(token, ip string, now time.Time) (reason, group string) {
	if len(token) > maxTokenLen {
		return RefusedMalformed, ""
	}
	parts := strings.Split(token, ".")
	if len(parts) != 6 {
		return RefusedMalformed, ""
	}
	kid, expText, group, tid, iph, sig := parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]
	exp, err := strconv.ParseInt(expText, 10, 64)
	if err != nil || exp <= 0 || !validKID(kid) || !validGroup(group) {
		return RefusedMalformed, ""
	}
	tidRaw, err1 := b64.DecodeString(tid)
	iphRaw, err2 := b64.DecodeString(iph)
	sigRaw, err3 := b64.DecodeString(sig)
	if err1 != nil || err2 != nil || err3 != nil || len(tidRaw) != tidLen || len(iphRaw) != iphLen || len(sigRaw) != sha256.Size {
		return RefusedMalformed, ""
	}
	var key []byte
	for _, k := range s.keys {
		if k.kid == kid {
			key = k.secret
			break
		}
	}
	// A key no longer configured is a signature that cannot be checked.
	if key == nil || !hmac.Equal(sigRaw, tokenMAC(key, token[:len(token)-len(sig)-1])) {
		return RefusedBadSignature, ""
	}
	if now.Unix() >= exp {
		return RefusedExpired, ""
	}
	if !hmac.Equal(iphRaw, ipMAC(key, ip)) {
		return RefusedWrongIP, ""
	}
	return "", group
}

// validGroup reports whether g can be a route group in a token: 1 to
// maxGroupLen lower-case letters.
func validGroup(g string) bool {
	if len(g) == 0 || len(g) > maxGroupLen {
		return false
	}
	for i := 0; i < len(g); i++ {
		if g[i] < 'a' || g[i] > 'z' {
			return false
		}
	}
	return true
}

func tokenMAC(key []byte, payload string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(tokenLabel))
	h.Write([]byte(payload))
	return h.Sum(nil)
}

func ipMAC(key []byte, ip string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(ipLabel))
	h.Write([]byte(canonicalIP(ip)))
	return h.Sum(nil)[:iphLen]
}
