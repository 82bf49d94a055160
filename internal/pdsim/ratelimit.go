package pdsim

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultRateWindow is PagerDuty's rate-limit window.
const DefaultRateWindow = time.Minute

// limiter counts one account's requests in a fixed window (a minute, as PagerDuty's
// limits are per minute; Options.RateWindow shortens it for tests) that opens with
// the first request after the previous window closed. PagerDuty documents the limit
// and the headers but not the algorithm; a fixed window makes `ratelimit-reset` exact.
type limiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	start  time.Time
	count  int
	active bool
}

// take counts one request at now and reports whether it is within the limit, how many
// requests remain in the window and how many whole seconds until it closes.
func (l *limiter) take(now time.Time) (ok bool, remaining, reset int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.active || !now.Before(l.start.Add(l.window)) {
		l.start, l.count, l.active = now, 0, true
	}
	l.count++
	remaining = max(l.limit-l.count, 0)
	reset = max(int(math.Ceil(l.start.Add(l.window).Sub(now).Seconds())), 1)
	return l.count <= l.limit, remaining, reset
}

// rateLimit counts the request against acct, sets the ratelimit-* headers, and answers
// 429/2020 when the window is exhausted. It reports whether the request may proceed.
func (s *Sim) rateLimit(w http.ResponseWriter, acct *account) bool {
	ok, remaining, reset := acct.limiter.take(s.now())
	setRateLimitHeaders(w.Header(), acct.limiter.limit, remaining, reset)
	if !ok {
		s.rateLimited.Add(1)
		writeError(w, http.StatusTooManyRequests, codeRateLimit, msgRateLimit)
	}
	return ok
}

func setRateLimitHeaders(h http.Header, limit, remaining, reset int) {
	h.Set("ratelimit-limit", strconv.Itoa(limit))
	h.Set("ratelimit-remaining", strconv.Itoa(remaining))
	h.Set("ratelimit-reset", strconv.Itoa(reset))
}

// RateLimited returns how many 429s the rate limiter has answered since the simulator
// started. Injected 429 faults are not counted, so a client that stays within its
// budget keeps this at zero.
func (s *Sim) RateLimited() int { return int(s.rateLimited.Load()) }
