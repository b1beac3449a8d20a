package dlq

import (
	"errors"
	"testing"
	"time"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in      string
		want    time.Time
		wantErr error
	}{
		{"", time.Time{}, nil},
		{"2h", now.Add(-2 * time.Hour), nil},
		{" 90m ", now.Add(-90 * time.Minute), nil},
		{"7d", now.Add(-7 * 24 * time.Hour), nil},
		{"1.5d", now.Add(-36 * time.Hour), nil},
		{"2026-05-01T08:30:00Z", time.Date(2026, 5, 1, 8, 30, 0, 0, time.UTC), nil},
		{"2026-05-01T08:30:00.5+02:00", time.Date(2026, 5, 1, 6, 30, 0, 5e8, time.UTC), nil},
		{"2026-05-01", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), nil},
		{"-2h", time.Time{}, ErrInvalidFilter},
		{"yesterday", time.Time{}, ErrInvalidFilter},
		{"-3d", time.Time{}, ErrInvalidFilter},
	}
	for _, tt := range tests {
		got, err := ParseSince(tt.in, now)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
			t.Errorf("ParseSince(%q) err = %v, want %v", tt.in, err, tt.wantErr)
			continue
		}
		if !got.Equal(tt.want) {
			t.Errorf("ParseSince(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestFilterEmptyAndValidate(t *testing.T) {
	if !(Filter{}).Empty() || !(Filter{Limit: 3}).Empty() {
		t.Error("a filter without conditions is not Empty")
	}
	for _, f := range []Filter{{All: true}, {IDs: []string{"x"}}, {Channel: "discord"}, {Since: time.Now()}, {Reason: "x"}} {
		if f.Empty() {
			t.Errorf("%+v is Empty", f)
		}
	}
	good := Filter{IDs: []string{"job_1", "seq:12"}, Channel: UnknownChannel, Limit: 0}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", good, err)
	}
	for _, bad := range []Filter{{Channel: "herald.>"}, {Limit: -1}, {IDs: []string{"seq:-1"}}, {IDs: []string{"x\ny"}}} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidFilter", bad, err)
		}
	}
}
