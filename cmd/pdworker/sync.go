package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/pdworker/pdworker/internal/app"
	"github.com/pdworker/pdworker/internal/config"
	"github.com/pdworker/pdworker/internal/depsync"
)

// runSync is `pdworker sync [--dry-run] [--force] [--refresh] [entityRef…]`: one
// dependency reconcile, its report printed as JSON.
func runSync(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pdworker sync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dry := fs.Bool("dry-run", false, "print the plan; write nothing to PagerDuty")
	force := fs.Bool("force", false, "apply even when the removal guard trips")
	refresh := fs.Bool("refresh", false, "re-read PagerDuty's side of every service instead of using recent observations")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := config.Load(config.Options{Command: true})
	if err != nil {
		fmt.Fprintf(stderr, "pdworker: invalid configuration:\n%s\n", err)
		return 2
	}
	log := newLogger(cfg.Log, stderr)
	rep, err := app.Sync(ctx, cfg, depsync.Request{DryRun: *dry, Force: *force, Refresh: *refresh, EntityRefs: fs.Args()}, log)
	if err != nil {
		fmt.Fprintf(stderr, "pdworker sync: %v\n", err)
		if rep == nil {
			return 1
		}
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep)
	if err != nil || rep.Guard != nil {
		return 1
	}
	return 0
}
