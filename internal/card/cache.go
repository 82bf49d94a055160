package card

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/pdworker/pdworker/internal/pagerduty"
)

// ErrDeadline is returned (wrapped) when a read found no answer, fresh or stale,
// within Config.Deadline.
var ErrDeadline = errors.New("no answer from PagerDuty within the deadline")

// Meta describes where an answer came from.
type Meta struct {
	// Stale is true when PagerDuty failed and this is the last good answer.
	Stale bool
	// FetchedAt is when the answer was read from PagerDuty.
	FetchedAt time.Time
}

// entry is one cached answer. val and fetchedAt keep the last good answer even after a
// failure (err), so that it can be served stale. An entry is immutable once in the
// cache map; a new outcome replaces it.
type entry struct {
	val       any
	fetchedAt time.Time
	err       error
	// fresh is when the entry stops answering without a fetch (success: TTL, failure:
	// ErrorTTL; zero once invalidated).
	fresh     time.Time
	serviceID string
}

// cache is the single-flight, invalidatable store behind every read.
type cache struct {
	cfg     Config
	metrics *metrics
	group   singleflight.Group

	mu      sync.Mutex
	entries map[string]*entry
	// generation counts invalidations, and invalidated holds, per service, the
	// generation of its last one. A fetch that began before an invalidation of the
	// service its answer turns out to be about stores that answer already expired;
	// callers after an invalidation of the service they name never join a fetch that
	// began before it (the service's generation is part of the single-flight key).
	generation  uint64
	invalidated map[string]uint64

	// afterCheck, when set, runs between a caller finding no fresh entry and joining
	// or starting the fetch; tests use it to interleave other callers there.
	afterCheck func()
}

func newCache(cfg Config, m *metrics) *cache {
	return &cache{cfg: cfg, metrics: m, entries: map[string]*entry{}, invalidated: map[string]uint64{}}
}

// flight is what one fetch hands every caller that joined it.
type flight struct {
	e *entry
	// cached is true when the fetch was not needed: another one had stored a fresh
	// answer after the callers found none.
	cached bool
}

// get answers key from the cache or from fetch. serviceID names the service the
// answer is about ("" for none), for invalidation; fetch may return a different one
// through the second result (integration-key lookups learn it from the answer).
func (c *cache) get(ctx context.Context, route, key, serviceID string, fetch func(ctx context.Context) (any, string, error)) (any, Meta, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.cfg.Deadline, fmt.Errorf("%s: %w", route, ErrDeadline))
	defer cancel()
	now := c.cfg.Now()

	c.mu.Lock()
	e := c.entries[key]
	invalidated := c.invalidated[serviceID]
	c.mu.Unlock()
	if e != nil && now.Before(e.fresh) {
		return c.answer(route, "hit", e, now)
	}
	if c.afterCheck != nil {
		c.afterCheck()
	}

	ch := c.group.DoChan(key+"#"+strconv.FormatUint(invalidated, 10), func() (any, error) {
		// Another fetch of key may have stored its answer and left the single flight
		// since this caller looked: that answer is fresh (an invalidation since would
		// have expired it), and fetching again would cost PagerDuty a second call in
		// one cache period.
		e, began := c.fresh(key)
		if e != nil {
			return flight{e: e, cached: true}, nil
		}
		c.metrics.fetches.WithLabelValues(route).Inc()
		// The fetch belongs to every caller that joins it, so the first caller
		// leaving must not cancel it; it has its own deadline.
		fctx, fcancel := context.WithTimeoutCause(context.WithoutCancel(ctx), c.cfg.Deadline, fmt.Errorf("%s: %w", route, ErrDeadline))
		defer fcancel()
		v, sid, err := fetch(fctx)
		if sid == "" {
			sid = serviceID
		}
		return flight{e: c.store(key, sid, began, v, err)}, nil
	})
	select {
	case r := <-ch:
		// The flight never fails: a failed fetch is an entry too, served by answer.
		f := r.Val.(flight)
		result := "miss"
		if f.cached {
			result = "hit"
		}
		return c.answer(route, result, f.e, c.cfg.Now())
	case <-ctx.Done():
		c.mu.Lock()
		e := c.entries[key]
		c.mu.Unlock()
		err := context.Cause(ctx)
		if v, m, ok := c.stale(e, err, c.cfg.Now()); ok {
			c.metrics.result(route, "stale")
			return v, m, nil
		}
		c.metrics.result(route, "timeout")
		return nil, Meta{}, err
	}
}

// fresh returns the entry of key when it still answers without a fetch, else nil, and
// the generation of invalidations it looked at.
func (c *cache) fresh(key string) (*entry, uint64) {
	now := c.cfg.Now()
	c.mu.Lock()
	e, generation := c.entries[key], c.generation
	c.mu.Unlock()
	if e != nil && now.Before(e.fresh) {
		return e, generation
	}
	return nil, generation
}

// answer serves e: its answer (counted as result), or when it records a failure, its
// last good answer flagged stale if that may be served, else the failure.
func (c *cache) answer(route, result string, e *entry, now time.Time) (any, Meta, error) {
	if e.err == nil {
		c.metrics.result(route, result)
		return e.val, Meta{FetchedAt: e.fetchedAt}, nil
	}
	if v, m, ok := c.stale(e, e.err, now); ok {
		c.metrics.result(route, "stale")
		return v, m, nil
	}
	c.metrics.result(route, "error")
	return nil, Meta{}, e.err
}

// stale returns e's last good answer when err says PagerDuty is failing (not that the
// object is gone or the call is refused) and the answer is recent enough.
func (c *cache) stale(e *entry, err error, now time.Time) (any, Meta, bool) {
	if e == nil || e.val == nil || now.Sub(e.fetchedAt) > c.cfg.StaleFor {
		return nil, Meta{}, false
	}
	if !pagerduty.IsRetryable(err) && !errors.Is(err, ErrDeadline) && !errors.Is(err, context.DeadlineExceeded) {
		return nil, Meta{}, false
	}
	return e.val, Meta{Stale: true, FetchedAt: e.fetchedAt}, true
}

// store records the outcome of a fetch that began at generation began and returns the
// entry now holding it.
func (c *cache) store(key, serviceID string, began uint64, v any, err error) *entry {
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	// Entries are never changed in place: readers hold them outside c.mu.
	e := &entry{}
	if old := c.entries[key]; old != nil {
		*e = *old
	} else if len(c.entries) >= maxEntries {
		c.sweep(now)
	}
	c.entries[key] = e
	e.serviceID = serviceID
	if err != nil {
		e.err, e.fresh = err, now.Add(c.cfg.ErrorTTL)
	} else {
		e.val, e.fetchedAt, e.err, e.fresh = v, now, nil, now.Add(c.cfg.TTL)
	}
	if c.invalidated[serviceID] > began {
		e.fresh = time.Time{}
	}
	return e
}

// maxEntries bounds the cache; past it, entries too old to be served stale go.
const maxEntries = 20000

// sweep drops entries whose answers are too old to serve; callers hold c.mu.
func (c *cache) sweep(now time.Time) {
	for k, e := range c.entries {
		if now.After(e.fresh) && now.Sub(e.fetchedAt) > c.cfg.StaleFor {
			delete(c.entries, k)
		}
	}
}

// invalidate expires every entry about serviceID.
func (c *cache) invalidate(serviceID string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.generation++
	c.invalidated[serviceID] = c.generation
	n := 0
	for k, e := range c.entries {
		if e.serviceID == serviceID {
			expired := *e
			expired.fresh = time.Time{}
			c.entries[k] = &expired
			n++
		}
	}
	return n
}

// metrics are the card cache's Prometheus series.
type metrics struct {
	requests      *prometheus.CounterVec
	fetches       *prometheus.CounterVec
	invalidations prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdworker_card_reads_total",
			Help: "Backstage card reads by route and how they were answered (hit, miss, stale, error, timeout).",
		}, []string{"route", "result"}),
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdworker_card_pagerduty_fetches_total",
			Help: "PagerDuty reads made for the Backstage card, by route (one per cache miss, shared by concurrent viewers).",
		}, []string{"route"}),
		invalidations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "pdworker_card_invalidations_total",
			Help: "PagerDuty webhook events that expired cached card data.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.fetches, m.invalidations)
	}
	return m
}

func (m *metrics) result(route, result string) { m.requests.WithLabelValues(route, result).Inc() }
