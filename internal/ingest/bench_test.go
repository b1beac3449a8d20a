package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldrelay/herald"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// withProductionLogs logs at info, log.level's default, to nowhere: the
// tests' debug logging into a buffer is not what a deployment pays.
func withProductionLogs() envOption {
	return func(_ *Config, d *Deps) {
		d.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
}

// benchHandler runs requests of body against h, one at a time ("serial") and
// from GOMAXPROCS goroutines ("parallel"), and reports req/s. ok says whether
// the answer is the expected one.
func benchHandler(b *testing.B, h http.Handler, path, body string, ok func(*httptest.ResponseRecorder) bool) {
	serve := func() error {
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Secret", testAPISecret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if !ok(rec) {
			return fmt.Errorf("status %d: %s", rec.Code, rec.Body)
		}
		return nil
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := serve(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := serve(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
}

// BenchmarkStreakyHandler measures the whole /send-notification path with
// StreakyWait 0: auth, decode, open and check the credential, build the job,
// publish it to a real embedded JetStream and wait for its acknowledgement.
func BenchmarkStreakyHandler(b *testing.B) {
	e := newTestEnv(b, withProductionLogs())
	benchHandler(b, e.h, "/send-notification", e.discordBody(), func(rec *httptest.ResponseRecorder) bool {
		return rec.Code == http.StatusOK && strings.Contains(rec.Body.String(), `"success":true`)
	})
}

// BenchmarkAPIHandler measures POST /v1/notifications: auth, strict decode,
// open and check the credential, publish to a real embedded JetStream and
// wait for its acknowledgement, 202.
func BenchmarkAPIHandler(b *testing.B) {
	e := newTestEnv(b, withProductionLogs())
	benchHandler(b, e.h, "/v1/notifications", e.apiBody("discord"), func(rec *httptest.ResponseRecorder) bool {
		return rec.Code == http.StatusAccepted
	})
}

// bareHandler is the yardstick of the Streaky handler: it only reads and
// decodes a Streaky body and publishes it to e's JetStream (file storage,
// acknowledged, with a Nats-Msg-Id), and answers success, with no auth,
// credential check, job building, status or metrics.
func bareHandler(e *env) http.Handler {
	type streakyBare struct {
		Type             string `json:"type"`
		EncryptedWebhook string `json:"encrypted_webhook"`
		Message          struct {
			Username      string `json:"username"`
			CurrentStreak int32  `json:"current_streak"`
			Message       string `json:"message"`
		} `json:"message"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var req streakyBare
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		id := herald.NewID()
		ctx, cancel := context.WithTimeout(r.Context(), publishTimeout)
		defer cancel()
		msg := &nats.Msg{Subject: herald.JobIDSubject(herald.Channel(req.Type), id), Data: body,
			Header: nats.Header{jetstream.MsgIDHeader: []string{id}}}
		if _, err := e.js.PublishMsg(ctx, msg); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"success":true,"error":null}`)
	})
}

// BenchmarkBareHandler measures bareHandler alone; compare with
// BenchmarkStreakyHandler, or run BenchmarkStreakyVsBare for the ratio.
func BenchmarkBareHandler(b *testing.B) {
	e := newTestEnv(b, withProductionLogs())
	bare := bareHandler(e)
	benchHandler(b, bare, "/send-notification", e.discordBody(), func(rec *httptest.ResponseRecorder) bool {
		return rec.Code == http.StatusOK
	})
}

// BenchmarkStreakyVsBare serves the same Streaky body with the real handler
// and with bareHandler, alternately on the same server, so that both see the
// same machine load, and reports each one's rate from the time spent in it
// and their ratio (streaky/bare, the real handler's share of the bare
// throughput). With StreakyWait 0 it should stay at 0.8 or more.
func BenchmarkStreakyVsBare(b *testing.B) {
	e := newTestEnv(b, withProductionLogs())
	body := e.discordBody()
	bare := bareHandler(e)
	serve := func(h http.Handler) (time.Duration, error) {
		req := httptest.NewRequest("POST", "/send-notification", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-API-Secret", testAPISecret)
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		took := time.Since(start)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"success":true`) {
			return 0, fmt.Errorf("status %d: %s", rec.Code, rec.Body)
		}
		return took, nil
	}
	run := func(b *testing.B, parallel bool) {
		var streakyNs, bareNs atomic.Int64
		one := func() error {
			t, err := serve(e.h)
			if err != nil {
				return err
			}
			streakyNs.Add(int64(t))
			if t, err = serve(bare); err != nil {
				return err
			}
			bareNs.Add(int64(t))
			return nil
		}
		if parallel {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := one(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		} else {
			for b.Loop() {
				if err := one(); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(bareNs.Load())/float64(streakyNs.Load()), "streaky/bare")
		if !parallel { // concurrent requests overlap: their times do not add up to a rate
			b.ReportMetric(float64(b.N)/time.Duration(streakyNs.Load()).Seconds(), "streaky-req/s")
			b.ReportMetric(float64(b.N)/time.Duration(bareNs.Load()).Seconds(), "bare-req/s")
		}
	}
	b.Run("serial", func(b *testing.B) { run(b, false) })
	b.Run("parallel", func(b *testing.B) { run(b, true) })
}
