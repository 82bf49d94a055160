package app

import (
	"context"
	"fmt"
	"time"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/catalog"
	"github.com/pdworker/pdworker/internal/catalogwatch"
	"github.com/pdworker/pdworker/internal/config"
	"github.com/pdworker/pdworker/internal/depsync"
	"github.com/pdworker/pdworker/internal/httpapi"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/workers"
)

// addCatalogSync wires catalog changes to mappings and dependency sync: the
// catalog.entity.* consumer, the depsync.run consumer, the periodic reconcile (one
// replica, by lease), the reconcile of changed entities, and — with BACKSTAGE_URL and
// BACKSTAGE_TOKEN — the catalog watcher. It returns what the mapping routes need.
func (a *App) addCatalogSync(ctx context.Context, d shared, mappings *mapping.Store) (httpapi.MappingDeps, error) {
	dc := depsyncConfig(a.cfg, "")
	dc.Registerer = a.registry
	syncer, err := depsync.New(ctx, a.js, mappings, d.accounts, dc, a.log)
	if err != nil {
		return httpapi.MappingDeps{}, fmt.Errorf("dependency sync: %w", err)
	}
	catalogHandler := catalog.NewHandler(mappings, d.validator, d.accounts, syncer.MarkChanged, a.log)
	if err := a.consume(d, workers.ConsumerConfig{
		Stream: events.StreamCatalog, Durable: "pdworker-catalog",
		FilterSubjects: []string{"catalog.entity.>"}, Concurrency: 1,
	}, catalogHandler.Handle); err != nil {
		return httpapi.MappingDeps{}, err
	}
	// A full reconcile of a large catalog reads PagerDuty for minutes.
	const runTimeout = time.Hour
	if err := a.consume(d, workers.ConsumerConfig{
		Stream: events.StreamDepsync, Durable: "pdworker-depsync-run",
		FilterSubjects: []string{events.SubjectDepsyncRun}, Concurrency: 1,
		AckWait: runTimeout + time.Minute, HandlerTimeout: runTimeout,
	}, syncer.RunHandler(d.validator)); err != nil {
		return httpapi.MappingDeps{}, err
	}
	a.background = append(a.background, syncer.RunPeriodic, func(ctx context.Context) error {
		return syncer.RunChangedLoop(ctx, changedReconcileEvery)
	})

	switch {
	case a.cfg.Backstage.URL != "" && !a.cfg.Backstage.Token.IsZero():
		watcher, err := catalogwatch.New(ctx, a.js, catalogwatch.Config{
			BaseURL: a.cfg.Backstage.URL, Token: a.cfg.Backstage.Token, Interval: a.cfg.Backstage.PollInterval,
		}, a.log)
		if err != nil {
			return httpapi.MappingDeps{}, err
		}
		a.background = append(a.background, watcher.Run)
	case a.cfg.Backstage.URL != "":
		a.log.Info().Msg("BACKSTAGE_TOKEN is not set: the catalog watcher is off; catalog.entity.* messages must come from elsewhere")
	}

	return httpapi.MappingDeps{Store: mappings, Accounts: d.accounts, Changed: func(ctx context.Context, refs ...string) {
		if err := syncer.MarkChanged(ctx, refs...); err != nil {
			a.log.Warn().Err(err).Msg("could not mark remapped entities for dependency reconcile")
		}
	}}, nil
}

// depsyncConfig is the dependency-sync configuration of the service (holder "") and of
// `pdworker sync` (holder "cli").
func depsyncConfig(cfg *config.Config, holder string) depsync.Config {
	guardMin := cfg.Depsync.GuardMinRemovals
	if guardMin == 0 {
		guardMin = -1 // the setting's 0 means no floor; depsync reads 0 as its default
	}
	return depsync.Config{
		Interval: cfg.DepsyncInterval, MaxRemovalShare: cfg.Depsync.MaxRemovalShare,
		GuardMinRemovals: guardMin, BatchSize: cfg.Depsync.BatchSize, ReadOnly: cfg.ReadOnly, Holder: holder,
	}
}

// changedReconcileEvery is how often changed catalog entities are reconciled; a burst
// of catalog changes within it becomes one dependency-sync run.
const changedReconcileEvery = 5 * time.Second
