package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// --simulate starts a working demo: the printed curl commands work as printed.
func TestSimulateDemo(t *testing.T) {
	t.Setenv("HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("NATS_EMBEDDED_LISTEN", "127.0.0.1:0")
	t.Setenv("DATA_DIR", t.TempDir())
	t.Setenv("LOG_LEVEL", "warn")

	ctx, cancel := context.WithCancel(context.Background())
	out, stdout := io.Pipe()
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"--simulate"}, stdout, io.Discard); _ = stdout.Close() }()

	var text strings.Builder
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		text.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "/_sim/requests?method=POST") {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	demo := text.String()

	token := regexp.MustCompile(`Bearer (pdw_[0-9a-f]+)`).FindStringSubmatch(demo)
	require.NotNil(t, token, demo)
	url := regexp.MustCompile(`(http://\S+/api/pagerduty/actions/pagerduty:service:create)`).FindStringSubmatch(demo)
	require.NotNil(t, url, demo)
	body := regexp.MustCompile(`-d '(\{"name":"checkout".*\})'`).FindStringSubmatch(demo)
	require.NotNil(t, body, demo)

	req, err := http.NewRequest(http.MethodPost, url[1], strings.NewReader(body[1]))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token[1])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	assert.Contains(t, string(b), `"alertGrouping":"intelligent"`)
	assert.Contains(t, string(b), `"created":true`)

	// The card's on-call curl (-g: the brackets are sent as they are).
	oncall := regexp.MustCompile(`curl -sg '(http://\S+/api/pagerduty/oncall-users\?\S+)'`).FindStringSubmatch(demo)
	require.NotNil(t, oncall, demo)
	req, err = http.NewRequest(http.MethodGet, oncall[1], nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token[1])
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	assert.Contains(t, string(b), `"name":"Ada Lovelace"`)

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code)
	case <-time.After(30 * time.Second):
		t.Fatal("pdworker did not stop")
	}
}

func TestMissingSettingsStopTheStart(t *testing.T) {
	for _, k := range []string{"PAGERDUTY_API_TOKEN", "PAGERDUTY_ACCOUNTS_FILE", "PAGERDUTY_OAUTH_CLIENT_ID", "API_TOKENS", "AUTH_DISABLED", "BACKSTAGE_URL"} {
		t.Setenv(k, "")
		require.NoError(t, os.Unsetenv(k))
	}
	var stderr strings.Builder
	code := run(context.Background(), nil, io.Discard, &stderr)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr.String(), "PAGERDUTY_API_TOKEN: no PagerDuty credentials")
	assert.Contains(t, stderr.String(), "API_TOKENS:")
}

func TestVersion(t *testing.T) {
	var stdout strings.Builder
	assert.Equal(t, 0, run(context.Background(), []string{"version"}, &stdout, io.Discard))
	assert.Contains(t, stdout.String(), "pdworker ")
}
