package app

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/config"
	"github.com/pdworker/pdworker/internal/depsync"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/pagerduty"
)

// Sync runs one dependency reconcile from the command line (pdworker sync) against the
// NATS that a running pdworker uses: NATS_URL, or the embedded server's
// NATS_EMBEDDED_LISTEN address. With req.DryRun it only plans. The report is also
// published on depsync.report.
func Sync(ctx context.Context, cfg *config.Config, req depsync.Request, log zerolog.Logger) (*depsync.Report, error) {
	url := cfg.NATS.URL
	if cfg.NATS.Embedded() {
		url = "nats://" + cfg.NATS.EmbeddedListen
	}
	nc, err := events.Connect(ctx, url, "pdworker-sync", log)
	if err != nil {
		return nil, fmt.Errorf("connect to the NATS of a running pdworker (NATS_URL or NATS_EMBEDDED_LISTEN): %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if err := events.Provision(ctx, js, cfg.NATS.Replicas); err != nil {
		return nil, err
	}
	accounts, err := pagerduty.NewAccounts(cfg.PagerDuty.Accounts, pagerduty.Options{RateLimit: cfg.PagerDuty.RateLimit}, log)
	if err != nil {
		return nil, fmt.Errorf("PagerDuty accounts: %w", err)
	}
	store, err := mapping.NewStore(ctx, js)
	if err != nil {
		return nil, err
	}
	s, err := depsync.New(ctx, js, store, accounts, depsyncConfig(cfg, "cli"), log)
	if err != nil {
		return nil, err
	}
	return s.Run(ctx, req, "cli")
}
