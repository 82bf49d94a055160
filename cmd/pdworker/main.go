package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/internal/app"
	"github.com/pdworker/pdworker/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program; it serves until ctx ends and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pdworker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	simulate := fs.Bool("simulate", false, "run against an in-process PagerDuty simulator with demo data (no PagerDuty account, no NATS install)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pdworker [--simulate] | pdworker sync [--dry-run] [--force] [--refresh] [entityRef…] | pdworker version")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch fs.Arg(0) {
	case "":
	case "sync":
		return runSync(ctx, fs.Args()[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "pdworker", version())
		return 0
	default:
		fmt.Fprintf(stderr, "pdworker: unknown command %q\n", fs.Arg(0))
		fs.Usage()
		return 2
	}

	cfg, err := config.Load(config.Options{Simulate: *simulate})
	if err != nil {
		fmt.Fprintf(stderr, "pdworker: invalid configuration:\n%s\n", err)
		return 2
	}
	log := newLogger(cfg.Log, stderr)

	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	a, err := app.New(startCtx, cfg, app.Options{Simulate: *simulate}, log)
	cancel()
	if err != nil {
		log.Error().Err(err).Msg("cannot start")
		return 1
	}
	a.Start()
	fmt.Fprint(stdout, a.DemoInstructions())
	<-ctx.Done()
	a.Stop()
	return 0
}

func newLogger(cfg config.Log, w io.Writer) zerolog.Logger {
	if cfg.Format == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	}
	return zerolog.New(w).Level(cfg.Level).With().Timestamp().Str("service", "pdworker").Logger()
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
