package challenge_test

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/heraldrelay/herald/client"
	"github.com/heraldrelay/herald/internal/challenge"
	"github.com/heraldrelay/herald/internal/testkit"
)

// twoReplicas returns two servers, each with its own Service and NATS
// connection, sharing one bucket.
func twoReplicas(t *testing.T) (a, b *httptest.Server, fa, fb *fixture) {
	t.Helper()
	s := testkit.NewServer(t)
	kvA, _ := connectKV(t, s)
	kvB, _ := connectKV(t, s)
	easy := func(c *challenge.Config) { c.Difficulty = 2 }
	fa, fb = newFixture(t, kvA, easy), newFixture(t, kvB, easy)
	return newServer(t, fa), newServer(t, fb), fa, fb
}

func TestChallengeIssuedByOneReplicaVerifiedByAnother(t *testing.T) {
	a, b, _, fb := twoReplicas(t)
	ch := getChallenge(t, a, "")
	res := postJSON(t, b, "", ch.ID, client.Solve(ch.Seed, ch.Difficulty))
	if res.status != http.StatusOK {
		t.Fatalf("verify on the other replica: %d %v", res.status, res.body)
	}
	if got := fb.solvedCalls(); len(got) != 1 || got[0] != (solvedCall{"api", bucketOf("127.0.0.1")}) {
		t.Errorf("OnSolved on the verifying replica: %v", got)
	}
	// The clearance is good on the first replica too.
	if _, ok := presentOn(t, a, res.str("clearance")); !ok {
		t.Error("the clearance is refused by the replica that did not sign it")
	}
}

// presentOn asks srv for the protected page with token.
func presentOn(t *testing.T, srv *httptest.Server, token string) (int, bool) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/page", nil)
	req.Header.Set(challenge.ClearanceHeader, token)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, res.StatusCode == http.StatusOK
}

func TestConcurrentDoubleVerifyAdmitsOne(t *testing.T) {
	a, b, fa, fb := twoReplicas(t)
	const rounds, posters = 5, 8
	for round := range rounds {
		ch := getChallenge(t, a, "")
		nonce := client.Solve(ch.Seed, ch.Difficulty)
		results := make([]answer, posters)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range posters {
			srv := a
			if i%2 == 1 {
				srv = b
			}
			wg.Go(func() {
				<-start
				results[i] = postJSON(t, srv, "", ch.ID, nonce)
			})
		}
		close(start)
		wg.Wait()
		ok, used := 0, 0
		for _, r := range results {
			switch {
			case r.status == http.StatusOK:
				ok++
			case r.status == http.StatusForbidden && r.str("error") == challenge.FailedUsed:
				used++
			default:
				t.Errorf("round %d: unexpected answer %d %v", round, r.status, r.body)
			}
		}
		if ok != 1 || used != posters-1 {
			t.Errorf("round %d: %d admitted, %d used; want 1 and %d", round, ok, used, posters-1)
		}
	}
	if n := len(fa.solvedCalls()) + len(fb.solvedCalls()); n != rounds {
		t.Errorf("OnSolved called %d times, want %d", n, rounds)
	}
}
