package catalogwatch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/events/natstest"
	"github.com/pdworker/pdworker/internal/backstagefake"
	"github.com/pdworker/pdworker/internal/catalogwatch"
	"github.com/pdworker/pdworker/internal/secret"
)

const token = "static-backstage-token-0123456789"

type env struct {
	fake *backstagefake.Catalog
	url  string
	js   jetstream.JetStream
}

func newEnv(t *testing.T) *env {
	t.Helper()
	fake := backstagefake.New(token)
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	_, _, js := natstest.Start(t)
	return &env{fake: fake, url: srv.URL, js: js}
}

func (e *env) watcher(t *testing.T, holder string, cfg catalogwatch.Config) *catalogwatch.Watcher {
	t.Helper()
	cfg.BaseURL, cfg.Holder = e.url, holder
	if cfg.Token == "" {
		cfg.Token = secret.Value(token)
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = 3
	}
	w, err := catalogwatch.New(context.Background(), e.js, cfg, zerolog.Nop())
	require.NoError(t, err)
	return w
}

func component(i int, deps ...string) backstagefake.Entity {
	return backstagefake.Entity{Kind: "Component", Name: fmt.Sprintf("svc-%d", i),
		Annotations: map[string]string{"pagerduty.com/service-id": fmt.Sprintf("PS%05d", i)}, DependsOn: deps}
}

// published is one message of the CATALOG stream.
type published struct {
	subject, msgID string
	body           map[string]any
}

// messages returns every message published to the catalog stream so far.
func (e *env) messages(t *testing.T) []published {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, events.StreamCatalog)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	var out []published
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		p := published{subject: m.Subject, msgID: m.Header.Get("Nats-Msg-Id")}
		require.NoError(t, json.Unmarshal(m.Data, &p.body))
		out = append(out, p)
	}
	return out
}

func names(ms []published) []string {
	var out []string
	for _, m := range ms {
		if m.subject == events.SubjectCatalogDeleted {
			out = append(out, "-"+m.body["entityRef"].(string))
			continue
		}
		out = append(out, "+"+m.body["entity"].(map[string]any)["metadata"].(map[string]any)["name"].(string))
	}
	return out
}

func TestInitialSyncPublishesEveryEntityOnce(t *testing.T) {
	e := newEnv(t)
	for i := range 7 {
		e.fake.Put(component(i, "component:svc-9", "resource:default/db"))
	}
	e.fake.Put(backstagefake.Entity{Kind: "Resource", Name: "db"})
	w := e.watcher(t, "a", catalogwatch.Config{})
	ctx := context.Background()

	res, err := w.Poll(ctx)
	require.NoError(t, err)
	assert.Equal(t, catalogwatch.Result{Polled: true, Entities: 7, Upserted: 7}, res, "3 pages of Components; the Resource is filtered out")
	ms := e.messages(t)
	assert.ElementsMatch(t, []string{"+svc-0", "+svc-1", "+svc-2", "+svc-3", "+svc-4", "+svc-5", "+svc-6"}, names(ms))
	ent := ms[0].body["entity"].(map[string]any)
	meta := ent["metadata"].(map[string]any)
	assert.Equal(t, "Component", ent["kind"])
	assert.NotEmpty(t, meta["uid"])
	assert.NotEmpty(t, meta["etag"])
	assert.Contains(t, meta["annotations"], "pagerduty.com/service-id")
	assert.NotContains(t, meta, "description", "only the fields mapping and sync need are asked for")
	assert.Equal(t, map[string]any{"dependsOn": []any{"component:svc-9", "resource:default/db"}}, ent["spec"])
	assert.Contains(t, ent, "relations")
	assert.Equal(t, "catalog.upserted."+meta["uid"].(string)+"."+meta["etag"].(string), ms[0].msgID)

	res, err = w.Poll(ctx)
	require.NoError(t, err)
	assert.Equal(t, catalogwatch.Result{Polled: true, Entities: 7}, res, "nothing changed, nothing published")
	assert.Len(t, e.messages(t), 7)
}

func TestChangeAndDelete(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.fake.Put(component(i))
	}
	w := e.watcher(t, "a", catalogwatch.Config{})
	ctx := context.Background()
	_, err := w.Poll(ctx)
	require.NoError(t, err)

	t.Run("a change publishes only the changed entity", func(t *testing.T) {
		e.fake.Put(component(3, "component:default/svc-1"))
		res, err := w.Poll(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, res.Upserted)
		assert.Zero(t, res.Deleted)
		ms := e.messages(t)
		require.Len(t, ms, 6)
		assert.Equal(t, []string{"+svc-3"}, names(ms[5:]))
	})
	t.Run("a delete publishes a deletion", func(t *testing.T) {
		require.True(t, e.fake.Delete("component:default/svc-2"))
		res, err := w.Poll(ctx)
		require.NoError(t, err)
		assert.Equal(t, catalogwatch.Result{Polled: true, Entities: 4, Deleted: 1}, res)
		ms := e.messages(t)
		require.Len(t, ms, 7)
		assert.Equal(t, []string{"-component:default/svc-2"}, names(ms[6:]))
		assert.Equal(t, events.SubjectCatalogDeleted, ms[6].subject)
	})
}

func TestRestartDoesNotRepublish(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.fake.Put(component(i))
	}
	ctx := context.Background()
	first := e.watcher(t, "before-restart", catalogwatch.Config{})
	_, err := first.Poll(ctx)
	require.NoError(t, err)
	first.Release() // the process stops

	e.fake.Put(component(4, "component:svc-0"))
	again := e.watcher(t, "after-restart", catalogwatch.Config{})
	res, err := again.Poll(ctx)
	require.NoError(t, err)
	assert.Equal(t, catalogwatch.Result{Polled: true, Entities: 5, Upserted: 1}, res, "only what changed while it was down")
	assert.Len(t, e.messages(t), 6)
}

func TestOnePollerAmongReplicas(t *testing.T) {
	e := newEnv(t)
	for i := range 6 {
		e.fake.Put(component(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := catalogwatch.Config{Interval: 20 * time.Millisecond}
	a, b := e.watcher(t, "replica-a", cfg), e.watcher(t, "replica-b", cfg)
	done := make(chan struct{}, 2)
	for _, w := range []*catalogwatch.Watcher{a, b} {
		go func() { _ = w.Run(ctx); done <- struct{}{} }()
	}
	total := func() int {
		n := 0
		for _, c := range e.fake.Requests() {
			n += c
		}
		return n
	}
	require.Eventually(t, func() bool { return total() >= 5*3 }, 10*time.Second, 10*time.Millisecond, "several polls of three pages")
	agents := e.fake.Requests()
	assert.Len(t, agents, 1, "only the lease holder polls: %v", agents)
	assert.Len(t, e.messages(t), 6, "every entity published once, not once per replica")

	// The poller stops: the other replica takes over at once (the lease is released).
	cancel()
	<-done
	<-done
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	c := e.watcher(t, "replica-c", cfg)
	go func() { _ = c.Run(ctx2) }()
	require.Eventually(t, func() bool { return e.fake.Requests()["pdworker-catalogwatch/replica-c"] > 0 }, 10*time.Second, 10*time.Millisecond)
}

func TestErrorsAreClearAndPublishNothing(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.fake.Put(component(i))
	}
	ctx := context.Background()

	t.Run("401 says BACKSTAGE_TOKEN is refused", func(t *testing.T) {
		w := e.watcher(t, "bad-token", catalogwatch.Config{Token: "wrong-token-value"})
		_, err := w.Poll(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "refused BACKSTAGE_TOKEN (401")
		assert.NotContains(t, err.Error(), "wrong-token-value")
		w.Release()
		assert.Empty(t, e.messages(t))
	})

	w := e.watcher(t, "a", catalogwatch.Config{})
	_, err := w.Poll(ctx)
	require.NoError(t, err)
	require.True(t, e.fake.Delete("component:default/svc-4"))

	t.Run("a listing that fails part-way publishes no deletion", func(t *testing.T) {
		e.fake.FailNext(0, 503) // the second page fails
		_, err := w.Poll(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "503")
		assert.Len(t, e.messages(t), 5)
	})
	t.Run("the next poll catches up", func(t *testing.T) {
		res, err := w.Poll(ctx)
		require.NoError(t, err)
		assert.Equal(t, 1, res.Deleted)
	})
}

func TestConfigErrors(t *testing.T) {
	_, _, js := natstest.Start(t)
	for _, tt := range []struct {
		name string
		cfg  catalogwatch.Config
		want string
	}{
		{"no URL", catalogwatch.Config{Token: "x"}, "BACKSTAGE_URL"},
		{"not http", catalogwatch.Config{BaseURL: "ftp://backstage", Token: "x"}, "BACKSTAGE_URL"},
		{"no token", catalogwatch.Config{BaseURL: "http://backstage:7007"}, "BACKSTAGE_TOKEN"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := catalogwatch.New(context.Background(), js, tt.cfg, zerolog.Nop())
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestCredentialsInURLNeverPrinted: a BACKSTAGE_URL with user info (a proxy's basic
// auth) is redacted in every error the watcher returns, which Run logs.
func TestCredentialsInURLNeverPrinted(t *testing.T) {
	_, _, js := natstest.Start(t)
	const password = "s3cret-proxy-pw"
	_, err := catalogwatch.New(context.Background(), js, catalogwatch.Config{BaseURL: "ftp://ops:" + password + "@backstage", Token: token}, zerolog.Nop())
	require.Error(t, err)
	assert.NotContains(t, err.Error(), password)

	w, err := catalogwatch.New(context.Background(), js, catalogwatch.Config{BaseURL: "http://ops:" + password + "@127.0.0.1:1", Token: token}, zerolog.Nop())
	require.NoError(t, err)
	defer w.Release()
	_, err = w.Poll(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unreachable")
	assert.NotContains(t, err.Error(), password)
}
