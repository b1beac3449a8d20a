package pacing

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{}.withDefaults()
	want := Config{
		Discord:         DiscordConfig{GlobalRate: 50, InvalidBudget: 5000, InvalidWindow: 10 * time.Minute, UnverifiedShare: 0.1, BadDestinationTTL: time.Hour},
		Telegram:        TelegramConfig{PerChat: 1, PerGroup: 20.0 / 60, PerBot: 30},
		MaxHold:         2 * time.Second,
		MaxInFlight:     2,
		MaxDestinations: 100_000,
		MaxMemory:       8 << 20,
	}
	if c != want {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" for valid
	}{
		{"custom", Config{MaxHold: time.Second, MaxDestinations: 10, Discord: DiscordConfig{GlobalRate: 25}}, ""},
		{"negative max hold", Config{MaxHold: -time.Second}, "pacing.max_hold"},
		{"max hold too long", Config{MaxHold: 2 * time.Minute}, "pacing.max_hold"},
		{"negative destinations", Config{MaxDestinations: -1}, "pacing.max_destinations"},
		{"negative memory", Config{MaxMemory: -1}, "pacing.max_memory"},
		{"tiny memory", Config{MaxMemory: 1000}, "pacing.max_memory"},
		{"negative global rate", Config{Discord: DiscordConfig{GlobalRate: -1}}, "channels.discord.global_rate"},
		{"NaN global rate", Config{Discord: DiscordConfig{GlobalRate: math.NaN()}}, "channels.discord.global_rate"},
		{"infinite rate", Config{Telegram: TelegramConfig{PerBot: math.Inf(1)}}, "channels.telegram.per_bot_rate"},
		{"negative budget", Config{Discord: DiscordConfig{InvalidBudget: -5}}, "channels.discord.invalid_budget"},
		{"short window", Config{Discord: DiscordConfig{InvalidWindow: time.Millisecond}}, "channels.discord.invalid_window"},
		{"negative chat rate", Config{Telegram: TelegramConfig{PerChat: -1}}, "channels.telegram.per_chat_rate"},
		{"negative group rate", Config{Telegram: TelegramConfig{PerGroup: -1}}, "channels.telegram.per_group_rate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Validate = %v, want an error naming %s", err, tt.want)
			}
			if _, nerr := New(tt.cfg, nil, nil); (nerr == nil) != (tt.want == "") {
				t.Errorf("New error = %v", nerr)
			}
		})
	}
	// Every problem is reported at once.
	err := Config{MaxHold: -1, Discord: DiscordConfig{GlobalRate: -1}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "max_hold") || !strings.Contains(err.Error(), "global_rate") {
		t.Errorf("Validate = %v, want both problems", err)
	}
}
