package pacing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/heraldrelay/herald/consumer"
	"github.com/heraldrelay/herald/internal/fake"
	"github.com/heraldrelay/herald/internal/testkit/relay"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestRegistrationsCannotSpendTheTenantsBudget is issue 11's HIGH attack:
// one client drives verification messages to webhooks that answer 401, at
// three times the invalid-request budget (lowered to 50 here). They spend
// at most their share (a tenth, counted from the moment each is sent, so it
// is never overshot), Discord is never suspended, and a verified tenant's
// job is delivered within seconds meanwhile.
func TestRegistrationsCannotSpendTheTenantsBudget(t *testing.T) {
	t.Parallel()
	const (
		budget        = 50
		registrations = 3 * budget
		tenantID      = "424242424242424242"
	)
	e := relay.New(t)
	f := e.Discord()
	f.Script(func(r fake.DiscordRequest, _ int) fake.Response {
		if r.WebhookID == tenantID {
			return fake.Response{}
		}
		return fake.RespondDiscordError(http.StatusUnauthorized, 50027, "Invalid Webhook Token")
	})
	p := runPaced(e, Config{Discord: DiscordConfig{InvalidBudget: budget, InvalidWindow: time.Minute}},
		consumer.Config{Workers: 32, AckWait: 10 * time.Second, SendTimeout: 5 * time.Second, DrainTimeout: time.Second})

	for i := range registrations {
		job := e.DiscordJob(fmt.Sprint(1000+i), "StrangerToken", "Herald verification code: 123456")
		job.Source = herald.SourceVerification
		e.Publish(job)
	}
	e.WaitFor("the registrations' share to be spent", func() bool { return p.UnverifiedWait() > 0 })
	start := time.Now()
	id := e.Publish(e.DiscordJob(tenantID, "TenantToken", "a verified tenant's alert"))
	e.WaitFor("the tenant's job delivered", func() bool {
		st, err := e.Status.Get(t.Context(), id)
		return err == nil && st.State == herald.StateDelivered
	})
	took := time.Since(start)

	invalid := testutil.ToFloat64(e.Metrics.InvalidResponses.WithLabelValues("discord"))
	t.Logf("registrations: %d verification messages to 401 webhooks against a budget of %d: %v invalid answers spent (share %d), tenant delivered %s later",
		registrations, budget, invalid, p.unv.budget, took.Round(time.Millisecond))
	if invalid > budget/2 {
		t.Errorf("registrations spent %v invalid answers, want at most half the budget (%d)", invalid, budget/2)
	}
	if invalid > float64(p.unv.budget) {
		t.Errorf("registrations spent %v invalid answers, more than their share %d", invalid, p.unv.budget)
	}
	if s := testutil.ToFloat64(e.Metrics.Suspended.WithLabelValues("discord")); s != 0 {
		t.Error("Discord delivery was suspended")
	}
	if took > 5*time.Second {
		t.Errorf("the tenant's job took %s, want seconds", took)
	}
}

// TestBadDestinationRemembered: a destination that refused a verification
// message gets no second one while it is remembered; deliveries to it that
// are not verification messages still go out.
func TestBadDestinationRemembered(t *testing.T) {
	tp := newTestPacer(t, Config{})
	mw := tp.Middleware(func(herald.Notification) string { return hookA })
	sends := 0
	refuse := func(context.Context, *consumer.Delivery) error {
		sends++
		return herald.Permanent(&herald.DestinationError{Channel: herald.ChannelDiscord, StatusCode: http.StatusUnauthorized})
	}
	delivery := func(source string) *consumer.Delivery {
		return &consumer.Delivery{Job: herald.Job{Source: source}, Notification: herald.Notification{Channel: herald.ChannelDiscord}}
	}
	if err := mw(refuse)(context.Background(), delivery(herald.SourceVerification)); !errors.Is(err, herald.ErrPermanent) || sends != 1 {
		t.Fatalf("first verification: err %v, sends %d; want the 401, sent once", err, sends)
	}
	err := mw(refuse)(context.Background(), delivery(herald.SourceVerification))
	if !errors.Is(err, herald.ErrPermanent) || sends != 1 {
		t.Fatalf("second verification: err %v, sends %d; want refused without a send", err, sends)
	}
	if err := mw(refuse)(context.Background(), delivery("api")); sends != 2 {
		t.Fatalf("a tenant's delivery: err %v, sends %d; want it sent", err, sends)
	}
}
