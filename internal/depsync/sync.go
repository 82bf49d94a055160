package depsync

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/pagerduty"
)

// Defaults of Config.
const (
	DefaultInterval         = time.Hour
	DefaultMaxRemovalShare  = 0.1
	DefaultGuardMinRemovals = 10
	DefaultBatchSize        = 100
	DefaultReadSlices       = 12
	DefaultConcurrency      = 8
	// retryAttempts bounds how often one read or batch is tried again after the
	// client's own retries gave up on a retryable failure.
	retryAttempts = 8
)

// Config tunes a Syncer. Zero values take the defaults above.
type Config struct {
	// Interval is the period of the full reconcile (DEPSYNC_INTERVAL) and the age after
	// which an observation of PagerDuty's side is re-read.
	Interval time.Duration
	// MaxRemovalShare is the guard (DEPSYNC_MAX_REMOVAL_SHARE): a run that would remove
	// more than this share of the managed PagerDuty dependencies applies nothing.
	MaxRemovalShare float64
	// GuardMinRemovals: plans removing at most this many dependencies never trip the
	// guard (DEPSYNC_GUARD_MIN_REMOVALS).
	GuardMinRemovals int
	// BatchSize is the number of relationships per associate/disassociate call
	// (DEPSYNC_BATCH_SIZE).
	BatchSize int
	// ReadSlices splits the interval: the periodic job ticks every Interval/ReadSlices
	// and re-reads at most 1/ReadSlices of the services whose observation is stale.
	ReadSlices int
	// Concurrency bounds parallel PagerDuty reads (the client's budget paces them).
	Concurrency int
	// ReadOnly plans but never writes (READ_ONLY).
	ReadOnly bool
	// RetryWait is the first wait before retrying a read or batch that failed with a
	// retryable error once the client gave up; 0 means one second.
	RetryWait time.Duration
	// Holder names this replica in the lease and in reports.
	Holder string
	// Registerer receives pdworker_depsync_* metrics; nil records none.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.MaxRemovalShare <= 0 {
		c.MaxRemovalShare = DefaultMaxRemovalShare
	}
	if c.GuardMinRemovals < 0 {
		c.GuardMinRemovals = 0
	} else if c.GuardMinRemovals == 0 {
		c.GuardMinRemovals = DefaultGuardMinRemovals
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.ReadSlices <= 0 {
		c.ReadSlices = DefaultReadSlices
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.RetryWait <= 0 {
		c.RetryWait = time.Second
	}
	if c.Holder == "" {
		c.Holder = ulid.Make().String()
	}
	return c
}

// Syncer plans and applies dependency reconciles.
type Syncer struct {
	cfg      Config
	js       jetstream.JetStream
	kv       jetstream.KeyValue
	store    *mapping.Store
	accounts *pagerduty.Accounts
	log      zerolog.Logger
	metrics  *metrics
	now      func() time.Time
	// runMu serialises runs in this process; the lease serialises periodic runs
	// across replicas.
	runMu sync.Mutex
	// minLease is the least time the periodic lease is taken for.
	minLease time.Duration
}

// New opens the depsync bucket (events.Provision creates it).
func New(ctx context.Context, js jetstream.JetStream, store *mapping.Store, accounts *pagerduty.Accounts, cfg Config, log zerolog.Logger) (*Syncer, error) {
	kv, err := js.KeyValue(ctx, events.BucketDepsync)
	if err != nil {
		return nil, fmt.Errorf("open key-value bucket %s: %w", events.BucketDepsync, err)
	}
	return &Syncer{cfg: cfg.withDefaults(), js: js, kv: kv, store: store, accounts: accounts,
		log: log.With().Str("component", "depsync").Logger(), metrics: newMetrics(cfg.Registerer), now: time.Now, minLease: time.Minute}, nil
}

// observation is PagerDuty's side of one service: what it depends on.
type observation struct {
	Supporting []string  `json:"supporting"`
	At         time.Time `json:"at"`
}

// refusal remembers an edge PagerDuty refused, until the entity's dependsOn changes.
type refusal struct {
	Fingerprint string `json:"fingerprint"`
	Message     string `json:"message"`
	Status      int    `json:"status,omitempty"`
	Code        int    `json:"code,omitempty"`
}

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func obsKey(account, service string) string { return "obs." + enc(account) + "." + enc(service) }

func refusalKey(e Edge) string {
	return "refused." + enc(e.Account) + "." + enc(e.Dependent) + "." + enc(e.Supporting)
}

// node is one mapped service in scope.
type node struct {
	entity  mapping.Entity
	account string
	service string
	desired map[string]string // supporting service → target ref
	obs     *observation
	fresh   bool
	dirty   bool // changed by this run's writes
	readErr error
	fp      string
}

// Run plans a reconcile and, unless it is a dry run, the strategy forbids writes or the
// guard trips, applies it. The report is published on depsync.report.
func (s *Syncer) Run(ctx context.Context, req Request, trigger string) (*Report, error) {
	return s.runAndPublish(ctx, ctx, req, trigger, false)
}

// runAndPublish runs under runMu with runCtx and publishes the report with pubCtx, so
// that a run stopped by its own context is still reported. periodic bounds the
// re-reads of stale observations to one slice of the interval.
func (s *Syncer) runAndPublish(runCtx, pubCtx context.Context, req Request, trigger string, periodic bool) (*Report, error) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	rep, err := s.run(runCtx, req, trigger, periodic)
	if rep != nil {
		s.publish(pubCtx, rep)
	}
	return rep, err
}

func (s *Syncer) run(ctx context.Context, req Request, trigger string, periodic bool) (*Report, error) {
	rep := &Report{RunID: ulid.Make().String(), Trigger: trigger, DryRun: req.DryRun, Full: len(req.EntityRefs) == 0,
		Holder: s.cfg.Holder, StartedAt: s.now().UTC(), Plan: Plan{Add: []Edge{}, Remove: []Edge{}, PagerDutyOnly: []Edge{}},
		Added: []Edge{}, Removed: []Edge{}, Skipped: []Skip{}, Errors: []EdgeError{}}
	defer func() { rep.FinishedAt = s.now().UTC() }()
	strategy, err := s.store.Strategy(ctx)
	if err != nil {
		return nil, err
	}
	rep.Strategy = strategy
	if strategy != mapping.StrategyBackstage && strategy != mapping.StrategyBoth {
		rep.Message = fmt.Sprintf("strategy %q: dependency sync applies nothing (set %s to backstage or both)", strategy, mapping.SettingDependencySyncStrategy)
		return rep, nil
	}
	view, err := s.store.View(ctx)
	if err != nil {
		return nil, err
	}
	nodes, managed := s.scope(view, req, rep)
	rep.Services = len(nodes)
	refreshCap := 0
	if periodic {
		refreshCap = s.refreshCap(len(view.Bindings()))
	}
	if err := s.observe(ctx, nodes, req.Refresh || !rep.Full, refreshCap, rep); err != nil {
		return rep, err
	}
	s.plan(ctx, nodes, managed, strategy, rep)

	// The guard needs the count of managed dependencies (a read of every observation)
	// only when the plan removes more than the floor.
	if n := len(rep.Plan.Remove); n > s.cfg.GuardMinRemovals && !req.Force {
		existing, err := s.managedEdgeCount(ctx, managed)
		if err != nil {
			return rep, err
		}
		if float64(n) > s.cfg.MaxRemovalShare*float64(existing) {
			share := float64(n) / float64(max(existing, 1))
			rep.Guard = &Guard{Removals: n, Existing: existing, Share: share, MaxShare: s.cfg.MaxRemovalShare,
				Message: fmt.Sprintf("the plan removes %d of %d managed PagerDuty dependencies (%.1f%%), more than DEPSYNC_MAX_REMOVAL_SHARE=%.1f%%: nothing was applied; check the catalog and mappings, then run again with force", n, existing, share*100, s.cfg.MaxRemovalShare*100)}
			rep.Message = rep.Guard.Message
			return rep, nil
		}
	}
	switch {
	case req.DryRun:
		rep.Message = fmt.Sprintf("dry run: would add %d and remove %d dependencies", len(rep.Plan.Add), len(rep.Plan.Remove))
		return rep, nil
	case s.cfg.ReadOnly:
		rep.Message = fmt.Sprintf("READ_ONLY: would add %d and remove %d dependencies; nothing was written", len(rep.Plan.Add), len(rep.Plan.Remove))
		return rep, nil
	}
	if err := s.apply(ctx, nodes, rep); err != nil {
		return rep, err
	}
	rep.Message = fmt.Sprintf("added %d, removed %d, %d errors, %d skipped", len(rep.Added), len(rep.Removed), len(rep.Errors), len(rep.Skipped))
	return rep, nil
}

// scope returns the mapped services to reconcile and, per account, every mapped
// service (only edges between those are managed).
func (s *Syncer) scope(view *mapping.View, req Request, rep *Report) ([]*node, map[string]map[string]bool) {
	def := ""
	if s.accounts != nil && s.accounts.Default() != nil {
		def = s.accounts.Default().Account()
	}
	accountOf := func(b mapping.Binding) (string, bool) {
		a := b.Account
		if a == "" {
			a = def
		}
		if s.accounts == nil {
			return a, false
		}
		_, err := s.accounts.Client(a)
		return a, err == nil
	}
	managed := map[string]map[string]bool{}
	bound := map[string]mapping.Binding{}
	for _, b := range view.Bindings() {
		a, ok := accountOf(b)
		if !ok {
			continue
		}
		b.Account = a
		bound[b.EntityRef] = b
		if managed[a] == nil {
			managed[a] = map[string]bool{}
		}
		managed[a][b.ServiceID] = true
	}
	var refs []string
	if len(req.EntityRefs) == 0 {
		for ref := range bound {
			refs = append(refs, ref)
		}
	} else {
		for _, r := range req.EntityRefs {
			if ref, err := mapping.NormalizeRef(r); err == nil {
				refs = append(refs, ref)
			}
		}
	}
	slices.Sort(refs)
	refs = slices.Compact(refs)
	var nodes []*node
	seen := map[string]bool{}
	for _, ref := range refs {
		b, ok := bound[ref]
		if !ok {
			continue // unmapped: never touched
		}
		key := b.Account + "\x00" + b.ServiceID
		if seen[key] {
			rep.Skipped = append(rep.Skipped, Skip{EntityRef: ref, Reason: "another entity is mapped to the same service " + b.ServiceID})
			continue
		}
		seen[key] = true
		e := view.Entities[ref]
		n := &node{entity: e, account: b.Account, service: b.ServiceID, desired: map[string]string{}}
		n.fp = fingerprint(b, e)
		for _, t := range e.DependsOn {
			tb, ok := bound[t]
			switch {
			case !ok:
				rep.Skipped = append(rep.Skipped, Skip{EntityRef: ref, TargetRef: t, Reason: "the target has no PagerDuty mapping"})
			case tb.Account != b.Account:
				rep.Skipped = append(rep.Skipped, Skip{EntityRef: ref, TargetRef: t, Reason: fmt.Sprintf("the target is in PagerDuty account %q, the entity in %q", tb.Account, b.Account)})
			case tb.ServiceID == b.ServiceID:
				rep.Skipped = append(rep.Skipped, Skip{EntityRef: ref, TargetRef: t, Reason: "the target is mapped to the same service"})
			default:
				n.desired[tb.ServiceID] = t
			}
		}
		nodes = append(nodes, n)
	}
	return nodes, managed
}

func fingerprint(b mapping.Binding, e mapping.Entity) string {
	return b.Account + "|" + b.ServiceID + "|" + strings.Join(e.DependsOn, ",")
}

// observe loads PagerDuty's side of every node: a cached observation younger than the
// interval, else a read. refreshCap > 0 bounds how many stale (but present)
// observations are re-read; missing ones are always read.
func (s *Syncer) observe(ctx context.Context, nodes []*node, refresh bool, refreshCap int, rep *Report) error {
	var stale []*node
	for _, n := range nodes {
		if !refresh {
			o, err := s.loadObservation(ctx, n.account, n.service)
			if err != nil {
				return err
			}
			n.obs = o
			if o != nil && s.now().Sub(o.At) < s.cfg.Interval {
				continue
			}
		}
		stale = append(stale, n)
	}
	if refreshCap > 0 {
		// Missing observations first, then the oldest.
		sort.SliceStable(stale, func(i, j int) bool {
			a, b := stale[i].obs, stale[j].obs
			if a == nil || b == nil {
				return a == nil && b != nil
			}
			return a.At.Before(b.At)
		})
		n := 0
		for i, x := range stale {
			if x.obs != nil {
				if n >= refreshCap {
					stale = stale[:i]
					break
				}
				n++
			}
		}
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.Concurrency)
	for _, n := range stale {
		g.Go(func() error {
			c, err := s.accounts.Client(n.account)
			if err != nil {
				return err
			}
			var deps []pagerduty.Dependency
			calls, err := s.retry(gctx, func(ctx context.Context) error {
				var err error
				deps, err = c.ServiceDependencies(ctx, n.service)
				return err
			})
			mu.Lock()
			rep.PagerDutyReads += calls
			mu.Unlock()
			if err != nil {
				if gctx.Err() != nil {
					return gctx.Err()
				}
				n.readErr = err
				return nil
			}
			o := &observation{Supporting: []string{}, At: s.now().UTC()}
			for _, d := range deps {
				if d.Dependent.ID == n.service {
					o.Supporting = append(o.Supporting, d.Supporting.ID)
				}
			}
			slices.Sort(o.Supporting)
			n.obs, n.fresh = o, true
			return s.saveObservation(gctx, n.account, n.service, o)
		})
	}
	return g.Wait()
}

// retry calls fn until it succeeds, fails for good, or has failed retryAttempts times
// with a retryable error; it waits between attempts (PagerDuty's reset time when
// given). It returns the number of calls made.
func (s *Syncer) retry(ctx context.Context, fn func(ctx context.Context) error) (int, error) {
	wait := s.cfg.RetryWait
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || !pagerduty.IsRetryable(err) || attempt >= retryAttempts {
			return attempt, err
		}
		d := wait
		var ae *pagerduty.APIError
		if errors.As(err, &ae) && ae.RetryAfter() > d {
			d = ae.RetryAfter()
		}
		select {
		case <-ctx.Done():
			return attempt, ctx.Err()
		case <-time.After(d):
		}
		wait = min(wait*2, 30*time.Second)
	}
}

func (s *Syncer) plan(ctx context.Context, nodes []*node, managed map[string]map[string]bool, strategy string, rep *Report) {
	for _, n := range nodes {
		if n.readErr != nil {
			rep.Errors = append(rep.Errors, EdgeError{Edge: Edge{Account: n.account, Dependent: n.service, EntityRef: n.entity.Ref}, Op: "read", Message: n.readErr.Error()})
			continue
		}
		have := map[string]bool{}
		for _, sup := range n.obs.Supporting {
			if managed[n.account][sup] {
				have[sup] = true
			}
		}
		for _, sup := range sortedKeys(n.desired) {
			if have[sup] {
				continue
			}
			e := Edge{Account: n.account, Dependent: n.service, Supporting: sup, EntityRef: n.entity.Ref, TargetRef: n.desired[sup]}
			if r, _ := s.loadRefusal(ctx, e); r != nil && r.Fingerprint == n.fp {
				rep.Skipped = append(rep.Skipped, Skip{EntityRef: e.EntityRef, TargetRef: e.TargetRef, Reason: "PagerDuty refused this dependency before (" + r.Message + "); it is retried when the entity changes"})
				continue
			}
			rep.Plan.Add = append(rep.Plan.Add, e)
		}
		for _, sup := range sortedKeys(have) {
			if _, ok := n.desired[sup]; ok {
				continue
			}
			e := Edge{Account: n.account, Dependent: n.service, Supporting: sup, EntityRef: n.entity.Ref}
			if strategy == mapping.StrategyBackstage {
				rep.Plan.Remove = append(rep.Plan.Remove, e)
			} else {
				rep.Plan.PagerDutyOnly = append(rep.Plan.PagerDutyOnly, e)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// managedEdgeCount counts the managed dependencies PagerDuty is known to have, from
// every observation of a managed service.
func (s *Syncer) managedEdgeCount(ctx context.Context, managed map[string]map[string]bool) (int, error) {
	total := 0
	w, err := s.kv.Watch(ctx, "obs.>", jetstream.IgnoreDeletes())
	if err != nil {
		return 0, err
	}
	defer func() { _ = w.Stop() }()
	for e := range w.Updates() {
		if e == nil {
			return total, nil
		}
		parts := strings.Split(e.Key(), ".")
		if len(parts) != 3 {
			continue
		}
		acct, svc := dec(parts[1]), dec(parts[2])
		if !managed[acct][svc] {
			continue
		}
		var o observation
		if json.Unmarshal(e.Value(), &o) != nil {
			continue
		}
		for _, sup := range o.Supporting {
			if managed[acct][sup] {
				total++
			}
		}
	}
	return total, errors.New("observation watcher closed")
}

func dec(s string) string {
	b, _ := base64.RawURLEncoding.DecodeString(s)
	return string(b)
}

func (s *Syncer) loadObservation(ctx context.Context, account, service string) (*observation, error) {
	e, err := s.kv.Get(ctx, obsKey(account, service))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read observation of %s: %w", service, err)
	}
	var o observation
	if err := json.Unmarshal(e.Value(), &o); err != nil {
		return nil, nil
	}
	return &o, nil
}

func (s *Syncer) saveObservation(ctx context.Context, account, service string, o *observation) error {
	b, _ := json.Marshal(o)
	if _, err := s.kv.Put(ctx, obsKey(account, service), b); err != nil {
		return fmt.Errorf("store observation of %s: %w", service, err)
	}
	return nil
}

func (s *Syncer) loadRefusal(ctx context.Context, e Edge) (*refusal, error) {
	kve, err := s.kv.Get(ctx, refusalKey(e))
	if err != nil {
		return nil, err
	}
	var r refusal
	if err := json.Unmarshal(kve.Value(), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (s *Syncer) publish(ctx context.Context, rep *Report) {
	s.metrics.report(rep)
	b, err := json.Marshal(rep)
	if err != nil {
		return
	}
	if _, err := s.js.Publish(ctx, events.SubjectDepsyncReport, b); err != nil {
		s.log.Warn().Err(err).Str("run_id", rep.RunID).Msg("could not publish the dependency-sync report")
	}
	ev := s.log.Info()
	if len(rep.Errors) > 0 || rep.Guard != nil {
		ev = s.log.Warn()
	}
	ev.Str("run_id", rep.RunID).Str("trigger", rep.Trigger).Str("strategy", rep.Strategy).Bool("dry_run", rep.DryRun).
		Int("services", rep.Services).Int("plan_add", len(rep.Plan.Add)).Int("plan_remove", len(rep.Plan.Remove)).
		Int("added", len(rep.Added)).Int("removed", len(rep.Removed)).Int("errors", len(rep.Errors)).
		Int("pagerduty_reads", rep.PagerDutyReads).Int("pagerduty_writes", rep.PagerDutyWrites).Msg(rep.Message)
}
