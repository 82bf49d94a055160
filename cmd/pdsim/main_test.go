package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

func TestParseConfig(t *testing.T) {
	t.Setenv("PDSIM_ADDR", "127.0.0.1:9999")
	t.Setenv("PDSIM_RATE_LIMIT", "50")
	cfg, err := parseConfig([]string{"--oauth-ttl", "5m"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:9999", cfg.addr)
	assert.Equal(t, 50, cfg.rateLimit)
	assert.Equal(t, 5*time.Minute, cfg.oauthTTL)

	for _, args := range [][]string{{"--rate-limit", "0"}, {"--log-format", "xml"}, {"extra"}} {
		_, err := parseConfig(args, io.Discard)
		assert.Error(t, err, args)
	}
}

func TestReadSeed(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	require.NoError(t, os.WriteFile(good, []byte(`{"accounts":[{"id":"a","tokens":["t"]}]}`), 0o600))
	seed, err := readSeed(good)
	require.NoError(t, err)
	require.NoError(t, pdsim.New(pdsim.Options{}).Load(seed))

	bad := filepath.Join(dir, "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte(`{"accounts":[{"id":"a","token":"t"}]}`), 0o600))
	_, err = readSeed(bad)
	assert.ErrorContains(t, err, "unknown field")
}
