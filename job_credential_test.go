package herald_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/heraldrelay/herald"
)

func TestJobValidateCredentialID(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*herald.Job)
		wantErr string
	}{
		{"discord by id", func(j *herald.Job) { j.Credentials, j.CredentialID = herald.Credentials{}, "cred_1" }, ""},
		{"telegram by id", func(j *herald.Job) {
			j.Channel, j.Credentials, j.CredentialID = herald.ChannelTelegram, herald.Credentials{}, "abc"
		}, ""},
		{"both", func(j *herald.Job) { j.CredentialID = "cred_1" }, "credentials or credential_id, not both"},
		{"both, telegram part", func(j *herald.Job) {
			j.Credentials, j.CredentialID = herald.Credentials{ChatID: "x"}, "cred_1"
		}, "not both"},
		{"bad id", func(j *herald.Job) { j.Credentials, j.CredentialID = herald.Credentials{}, "c.*" }, "credential_id must be"},
		{"long id", func(j *herald.Job) { j.Credentials, j.CredentialID = herald.Credentials{}, strings.Repeat("a", 65) }, "credential_id must be"},
		{"neither", func(j *herald.Job) { j.Credentials = herald.Credentials{} }, "credentials.webhook is required"},
		{"with an owner", func(j *herald.Job) {
			j.Credentials, j.CredentialID, j.Owner = herald.Credentials{}, "cred_1", "abcdefghijklmnopqrstuvwxyz"
		}, ""},
		{"bad owner", func(j *herald.Job) { j.Credentials, j.CredentialID, j.Owner = herald.Credentials{}, "cred_1", "a b" }, "owner must be"},
		{"still needs a channel", func(j *herald.Job) {
			j.Channel, j.Credentials, j.CredentialID = "", herald.Credentials{}, "cred_1"
		}, "unknown channel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := validJob()
			tt.mutate(&j)
			err := j.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, herald.ErrInvalidJob) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestJobCredentialIDWireName(t *testing.T) {
	j := validJob()
	j.Credentials, j.CredentialID = herald.Credentials{}, "cred_1"
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"credential_id":"cred_1"`) || strings.Contains(string(b), `"owner"`) {
		t.Fatalf("wire form %s", b)
	}
	j.Owner = "o1"
	if b, _ = json.Marshal(j); !strings.Contains(string(b), `"owner":"o1"`) {
		t.Fatalf("wire form with an owner %s", b)
	}
	if b, _ := json.Marshal(validJob()); strings.Contains(string(b), "credential_id") {
		t.Fatalf("credential_id written when empty: %s", b)
	}
}
