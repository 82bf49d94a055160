package pagerduty

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// budget is the client-side request budget of one account, shared by every request the
// process sends with that account's credentials: API calls, in-process retries, the
// re-send after a 401 and OAuth token fetches. It is consulted once per HTTP attempt.
//
// Semantics, for a budget of N requests per window W (N = PAGERDUTY_RATE_LIMIT, W = RateWindow: one
// minute): a token bucket holding burst = max(1, N/60) tokens, refilled at (N−burst)/W.
// A full bucket plus one window of refill is exactly N tokens, so N+1 request starts
// would need more than W: no interval of length W (closed or open) ever contains more
// than N request starts (for N ≥ 2; with N = 1 the bucket refills at 1/W and a closed
// interval of exactly W may hold 2). The price is a sustained rate of N−burst per window
// (885/min at the default 900, 98.3%), bought to allow short bursts of a second's worth
// of requests without ever crossing PagerDuty's per-minute limit (960/min). "Start" is
// the moment the budget grants the attempt (the time its reservation allows); the
// server sees it later by the scheduling and network latency, which may bunch arrivals
// by that much.
type budget struct {
	lim  *rate.Limiter
	wait prometheus.Counter
	// mu hands the limiter reservations and cancellations in the order of the times
	// they carry: the limiter measures refill from the time of the previous call, so
	// a call carrying an earlier time than the one before it (a caller preempted
	// between reading the clock and reaching the limiter) would count that stretch
	// of refill twice and grant more than the budget.
	mu sync.Mutex
	// granted, when set, is told the time of every grant.
	granted func(time.Time)
}

func newBudget(perWindow int, window time.Duration, wait prometheus.Counter) *budget {
	burst := max(1, perWindow/60)
	refill := max(1, perWindow-burst)
	return &budget{
		lim:  rate.NewLimiter(rate.Limit(float64(refill)/window.Seconds()), burst),
		wait: wait,
	}
}

// budgetError says the budget cannot grant a request before the caller's deadline.
type budgetError struct{ wait time.Duration }

func (e *budgetError) Error() string {
	return fmt.Sprintf("client-side rate budget exhausted: next request allowed in %s, after the call's deadline", e.wait.Round(time.Millisecond))
}

// take waits until the budget grants one request. It gives up at once, returning
// *budgetError, when the grant would come after ctx's deadline, and returns ctx.Err()
// when ctx ends while waiting; in both cases the reservation is returned to the bucket.
func (b *budget) take(ctx context.Context) error {
	b.mu.Lock()
	now := time.Now()
	r := b.lim.ReserveN(now, 1)
	b.mu.Unlock()
	d := r.DelayFrom(now)
	if d == 0 {
		b.grant(now)
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < d {
		b.cancel(r)
		return &budgetError{wait: d}
	}
	start := time.Now()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		b.wait.Add(d.Seconds())
		b.grant(now.Add(d))
		return nil
	case <-ctx.Done():
		b.cancel(r)
		b.wait.Add(time.Since(start).Seconds())
		return ctx.Err()
	}
}

// cancel returns r's token to the bucket.
func (b *budget) cancel(r *rate.Reservation) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r.CancelAt(time.Now())
}

// grant reports a grant at t to b.granted.
func (b *budget) grant(t time.Time) {
	if b.granted != nil {
		b.granted(t)
	}
}
