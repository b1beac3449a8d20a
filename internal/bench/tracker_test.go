package bench

import (
	"testing"
	"time"
)

func TestTrackerAccountsForEveryJob(t *testing.T) {
	tr := newTracker(time.Now())
	for seq := range 8 {
		tr.begin(seq)
	}
	// 0: accepted, delivered once. 1: accepted, delivered three times.
	// 2: accepted, never delivered. 3: delivered before its answer arrived.
	// 4: refused 503. 5: no answer, yet delivered (stored after all).
	// 6: refused by the Streaky contract. 7: still in flight.
	tr.answer(0, true, "")
	tr.deliver(0)
	tr.answer(1, true, "")
	tr.deliver(1)
	tr.deliver(1)
	tr.deliver(1)
	tr.answer(2, true, "")
	tr.deliver(3)
	if tr.settled() {
		t.Fatal("settled with jobs in flight and one undelivered")
	}
	tr.answer(3, true, "")
	tr.answer(4, false, statusLabel(503))
	tr.answer(5, false, labelError)
	tr.deliver(5)
	tr.answer(6, false, "200 success:false")
	if tr.deliver(99) || tr.deliver(-1) {
		t.Error("a delivery of a job never sent was accepted")
	}

	p := tr.progress()
	if p != (progress{sent: 8, accepted: 4, refused: 3, delivered: 4}) {
		t.Errorf("progress %+v", p)
	}
	a := tr.tally()
	if a.sent != 8 || a.accepted != 4 || a.delivered != 3 || a.lost != 1 || a.duplicates != 2 ||
		a.deliveredUnaccepted != 1 || a.unexpected != 2 || a.deliveries != 6 {
		t.Errorf("tally %+v", a)
	}
	if len(a.lostSample) != 1 || a.lostSample[0] != 2 {
		t.Errorf("lost sample %v, want [2]", a.lostSample)
	}
	if a.refused["503"] != 1 || a.refused[labelError] != 1 || a.refused["200 success:false"] != 1 || len(a.refused) != 3 {
		t.Errorf("refused %v", a.refused)
	}
	if len(a.delivery) != 3 {
		t.Errorf("%d delivery latencies, want one per accepted and delivered job (3)", len(a.delivery))
	}
	// Answered: 0-4 and 6; 5 got no answer and 7 none yet.
	if len(a.answer) != 6 {
		t.Errorf("%d answer latencies, want 6", len(a.answer))
	}

	tr.answer(7, true, "")
	tr.deliver(7)
	tr.deliver(2)
	if !tr.settled() {
		t.Error("not settled with every accepted job delivered and nothing in flight")
	}
}
