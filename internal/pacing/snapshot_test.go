package pacing

import (
	"net/http"
	"testing"
	"time"

	"github.com/heraldrelay/herald/channels"
)

func TestDiscordState(t *testing.T) {
	tp := newTestPacer(t, Config{Discord: DiscordConfig{InvalidBudget: 2, InvalidWindow: time.Minute}})
	st := tp.DiscordState()
	if st.Invalid != 0 || st.InvalidBudget != 2 || st.Suspended || st.Paused(tp.clock.Now()) || st.GlobalRate != DefaultDiscordGlobalRate {
		t.Fatalf("fresh state %+v", st)
	}
	if called, err := tp.sendVia(t, "discord:1", nil); !called || err != nil {
		t.Fatal(called, err)
	}
	tp.ObserveDiscord(hookA, channels.RateLimit{}, http.StatusUnauthorized)
	tp.ObserveDiscord(hookB, channels.RateLimit{}, http.StatusForbidden)
	tp.sendVia(t, "discord:1", nil) // notices the spent budget
	st = tp.DiscordState()
	if st.Invalid != 2 || !st.Suspended || !st.Paused(tp.clock.Now()) || st.RecentRate <= 0 {
		t.Errorf("after two invalid responses: %+v", st)
	}
}
