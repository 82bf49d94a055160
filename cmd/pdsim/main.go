package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/pdworker/pdworker/internal/pdsim"
	"github.com/rs/zerolog"
)

const shutdownTimeout = 10 * time.Second

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

type config struct {
	addr, seedFile, logLevel, logFormat string
	rateLimit                           int
	oauthTTL                            time.Duration
	randomSeed                          int64
}

func run(args []string, stderr io.Writer) int {
	cfg, err := parseConfig(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "pdsim:", err)
		return 2
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "pdsim:", err)
		return 2
	}
	seed := pdsim.DemoSeedWithCard()
	if cfg.seedFile != "" {
		if seed, err = readSeed(cfg.seedFile); err != nil {
			log.Error().Err(err).Msg("cannot read seed")
			return 1
		}
	}
	sim := pdsim.New(pdsim.Options{RateLimit: cfg.rateLimit, OAuthTokenTTL: cfg.oauthTTL, Seed: cfg.randomSeed, Log: log})
	if err := sim.Load(seed); err != nil {
		log.Error().Err(err).Msg("cannot load seed")
		return 1
	}
	accounts := make([]string, 0, len(seed.Accounts))
	for _, a := range seed.Accounts {
		accounts = append(accounts, a.ID)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{Addr: cfg.addr, Handler: sim, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info().Str("addr", cfg.addr).Strs("accounts", accounts).Int("rate_limit", cfg.rateLimit).Msg("pdsim listening")

	select {
	case err := <-errc:
		log.Error().Err(err).Str("addr", cfg.addr).Msg("cannot serve (set --addr or PDSIM_ADDR)")
		return 1
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error().Err(err).Msg("shutdown")
		return 1
	}
	return 0
}

func parseConfig(args []string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("pdsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", envOr("PDSIM_ADDR", ":8090"), "listen address (PDSIM_ADDR)")
	fs.StringVar(&cfg.seedFile, "seed", os.Getenv("PDSIM_SEED"), "JSON seed file; empty = demo seed (PDSIM_SEED)")
	fs.StringVar(&cfg.logLevel, "log-level", envOr("PDSIM_LOG_LEVEL", "info"), "log level (PDSIM_LOG_LEVEL)")
	fs.StringVar(&cfg.logFormat, "log-format", envOr("PDSIM_LOG_FORMAT", "json"), "json or console (PDSIM_LOG_FORMAT)")
	rateLimit, err := strconv.Atoi(envOr("PDSIM_RATE_LIMIT", strconv.Itoa(pdsim.DefaultRateLimit)))
	if err != nil {
		return cfg, fmt.Errorf("PDSIM_RATE_LIMIT: %w", err)
	}
	fs.IntVar(&cfg.rateLimit, "rate-limit", rateLimit, "requests per minute per account (PDSIM_RATE_LIMIT)")
	ttl, err := time.ParseDuration(envOr("PDSIM_OAUTH_TOKEN_TTL", pdsim.DefaultOAuthTokenTTL.String()))
	if err != nil {
		return cfg, fmt.Errorf("PDSIM_OAUTH_TOKEN_TTL: %w", err)
	}
	fs.DurationVar(&cfg.oauthTTL, "oauth-ttl", ttl, "OAuth access token lifetime (PDSIM_OAUTH_TOKEN_TTL)")
	randomSeed, err := strconv.ParseInt(envOr("PDSIM_RANDOM_SEED", "1"), 10, 64)
	if err != nil {
		return cfg, fmt.Errorf("PDSIM_RANDOM_SEED: %w", err)
	}
	fs.Int64Var(&cfg.randomSeed, "random-seed", randomSeed, "seed of generated IDs, keys and tokens (PDSIM_RANDOM_SEED)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	case cfg.rateLimit <= 0:
		return cfg, errors.New("--rate-limit (PDSIM_RATE_LIMIT) must be positive")
	case cfg.oauthTTL <= 0:
		return cfg, errors.New("--oauth-ttl (PDSIM_OAUTH_TOKEN_TTL) must be positive")
	case cfg.logFormat != "json" && cfg.logFormat != "console":
		return cfg, errors.New("--log-format (PDSIM_LOG_FORMAT) must be json or console")
	}
	return cfg, nil
}

func newLogger(cfg config, w io.Writer) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(cfg.logLevel)
	if err != nil {
		return zerolog.Logger{}, fmt.Errorf("--log-level (PDSIM_LOG_LEVEL): %w", err)
	}
	if cfg.logFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger(), nil
}

func readSeed(path string) (pdsim.Seed, error) {
	var seed pdsim.Seed
	f, err := os.Open(path)
	if err != nil {
		return seed, fmt.Errorf("open seed: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&seed); err != nil {
		return seed, fmt.Errorf("decode seed %s: %w", path, err)
	}
	return seed, nil
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}
