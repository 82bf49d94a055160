package catalogwatch

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/secret"
)

// Defaults of Config.
const (
	DefaultInterval   = time.Minute
	DefaultPageSize   = 200
	DefaultMaxBackoff = 5 * time.Minute
	DefaultTimeout    = 30 * time.Second
)

// Fields are the entity fields the watcher asks Backstage for: what the catalog
// consumers read (kind, name, namespace, annotations, spec.dependsOn, relations) and
// what the diff needs (uid, etag).
var Fields = []string{"kind", "metadata.name", "metadata.namespace", "metadata.uid", "metadata.etag",
	"metadata.annotations", "spec.dependsOn", "relations"}

// Config tunes a Watcher.
type Config struct {
	// BaseURL is Backstage's backend base URL (BACKSTAGE_URL), without /api/catalog.
	BaseURL string
	// Token is a static external-access token (BACKSTAGE_TOKEN), sent as a bearer token.
	Token secret.Value
	// Interval is the time between polls (CATALOG_POLL_INTERVAL); 0 means DefaultInterval.
	Interval time.Duration
	// Filters are the by-query filter parameters (OR between them); nil means only
	// Components, the entities mapping and dependency sync handle.
	Filters []string
	// PageSize is the limit per page; 0 means DefaultPageSize.
	PageSize int
	// MaxBackoff caps the wait after consecutive failures; 0 means DefaultMaxBackoff.
	MaxBackoff time.Duration
	// Timeout bounds each HTTP request; 0 means DefaultTimeout.
	Timeout time.Duration
	// Holder names this replica in the lease and in the User-Agent; "" = a new ULID.
	Holder string
	// Transport is the HTTP transport; nil means http.DefaultTransport.
	Transport http.RoundTripper
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.Filters == nil {
		c.Filters = []string{"kind=component"}
	}
	if c.PageSize <= 0 {
		c.PageSize = DefaultPageSize
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Holder == "" {
		c.Holder = ulid.Make().String()
	}
	if c.Transport == nil {
		c.Transport = http.DefaultTransport
	}
	return c
}

// Key prefixes in the catalog_entities bucket (the mapping store uses "e." and "s.").
const (
	stateKeyPrefix = "w."       // w.<uid> → seen
	leaseKey       = "wl.lease" // the poller's lease
)

// seen is what the watcher last published for one entity.
type seen struct {
	Ref  string `json:"ref"`
	Etag string `json:"etag"`
}

type leaseRecord struct {
	Holder string    `json:"holder"`
	Until  time.Time `json:"until"`
}

// Result is the outcome of one Poll.
type Result struct {
	// Polled is false when another replica holds the lease (nothing was done).
	Polled bool
	// Entities is the number of entities the catalog listed.
	Entities int
	// Upserted and Deleted count the messages published.
	Upserted, Deleted int
}

// Watcher polls the Backstage catalog and publishes its changes.
type Watcher struct {
	cfg    Config
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	client *http.Client
	log    zerolog.Logger
	now    func() time.Time
	// leaseRev is the revision of the lease this watcher holds, 0 when none; only the
	// goroutine running Poll touches it.
	leaseRev uint64
}

// New checks the configuration and opens the catalog_entities bucket (events.Provision
// creates it).
func New(ctx context.Context, js jetstream.JetStream, cfg Config, log zerolog.Logger) (*Watcher, error) {
	cfg = cfg.withDefaults()
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("catalog watcher: BACKSTAGE_URL %q is not an http(s) URL", secret.RedactURL(cfg.BaseURL))
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.Token.IsZero() {
		return nil, errors.New("catalog watcher: BACKSTAGE_TOKEN is empty")
	}
	kv, err := js.KeyValue(ctx, events.BucketCatalogEntities)
	if err != nil {
		return nil, fmt.Errorf("open key-value bucket %s: %w", events.BucketCatalogEntities, err)
	}
	return &Watcher{cfg: cfg, js: js, kv: kv, client: &http.Client{Transport: cfg.Transport, Timeout: cfg.Timeout},
		log: log.With().Str("component", "catalogwatch").Logger(), now: time.Now}, nil
}

// Run polls every Interval until ctx ends. After a failure it logs the reason and polls
// again after a growing wait (1s, 2s, 4s … up to MaxBackoff) instead of the interval.
// It releases the lease when it returns, and returns only ctx's error.
func (w *Watcher) Run(ctx context.Context) error {
	defer w.Release()
	failures := 0
	for {
		wait := w.cfg.Interval
		res, err := w.Poll(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			failures++
			wait = w.backoff(failures)
			w.log.Error().Err(err).Int("failures", failures).Dur("retry_in", wait).Msg("catalog poll failed")
		default:
			if failures > 0 {
				w.log.Info().Int("failures", failures).Msg("catalog poll recovered")
			}
			failures = 0
			if res.Polled && (res.Upserted > 0 || res.Deleted > 0) {
				w.log.Info().Int("entities", res.Entities).Int("upserted", res.Upserted).Int("deleted", res.Deleted).Msg("catalog changes published")
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// backoff is the wait after the n-th consecutive failure: 1s, 2s, 4s … up to
// MaxBackoff.
func (w *Watcher) backoff(n int) time.Duration {
	d := time.Second
	for i := 1; i < n && d < w.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, w.cfg.MaxBackoff)
}

// leaseTTL is how long a lease lasts without renewal: a replica that stops polling
// is replaced after it.
func (w *Watcher) leaseTTL() time.Duration {
	return max(3*w.cfg.Interval, 30*time.Second)
}

// acquire takes or renews the poller lease; ok=false when another replica holds it.
func (w *Watcher) acquire(ctx context.Context) (bool, error) {
	body, _ := json.Marshal(leaseRecord{Holder: w.cfg.Holder, Until: w.now().Add(w.leaseTTL())})
	e, err := w.kv.Get(ctx, leaseKey)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		rev, err := w.kv.Create(ctx, leaseKey, body)
		if errors.Is(err, jetstream.ErrKeyExists) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("take the catalog watcher lease: %w", err)
		}
		w.leaseRev = rev
		return true, nil
	case err != nil:
		return false, fmt.Errorf("read the catalog watcher lease: %w", err)
	}
	var held leaseRecord
	if json.Unmarshal(e.Value(), &held) == nil && held.Holder != w.cfg.Holder && w.now().Before(held.Until) {
		w.leaseRev = 0
		return false, nil
	}
	rev, err := w.kv.Update(ctx, leaseKey, body, e.Revision())
	if events.IsKVConflict(err) {
		w.leaseRev = 0
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("renew the catalog watcher lease: %w", err)
	}
	w.leaseRev = rev
	return true, nil
}

// Release gives the lease up (if held) so that another replica polls at once.
func (w *Watcher) Release() {
	if w.leaseRev == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = w.kv.Delete(ctx, leaseKey, jetstream.LastRevision(w.leaseRev))
	w.leaseRev = 0
}

// listed is one entity of a poll.
type listed struct {
	uid, ref, etag string
	raw            json.RawMessage
}

// Poll lists the catalog once (if this replica holds the lease) and publishes what
// changed since the last poll by any replica. A listing that fails part-way publishes
// nothing.
func (w *Watcher) Poll(ctx context.Context) (Result, error) {
	ok, err := w.acquire(ctx)
	if err != nil || !ok {
		return Result{}, err
	}
	items, err := w.list(ctx)
	if err != nil {
		return Result{Polled: true}, err
	}
	prev, err := w.state(ctx)
	if err != nil {
		return Result{Polled: true}, err
	}
	res := Result{Polled: true, Entities: len(items)}
	for _, it := range items {
		if p, ok := prev[it.uid]; ok && p.Etag == it.etag {
			delete(prev, it.uid)
			continue
		}
		delete(prev, it.uid)
		body, _ := json.Marshal(map[string]json.RawMessage{"entity": it.raw})
		if _, err := w.js.Publish(ctx, events.SubjectCatalogUpserted, body, jetstream.WithMsgID(msgID("upserted", it.uid, it.etag))); err != nil {
			return res, fmt.Errorf("publish %s: %w", events.SubjectCatalogUpserted, err)
		}
		state, _ := json.Marshal(seen{Ref: it.ref, Etag: it.etag})
		if _, err := w.kv.Put(ctx, stateKeyPrefix+enc(it.uid), state); err != nil {
			return res, fmt.Errorf("record catalog state: %w", err)
		}
		res.Upserted++
	}
	for uid, p := range prev {
		if p.Ref != "" {
			body, _ := json.Marshal(map[string]string{"entityRef": p.Ref})
			if _, err := w.js.Publish(ctx, events.SubjectCatalogDeleted, body, jetstream.WithMsgID(msgID("deleted", uid, p.Etag))); err != nil {
				return res, fmt.Errorf("publish %s: %w", events.SubjectCatalogDeleted, err)
			}
			res.Deleted++
		}
		if err := w.kv.Delete(ctx, stateKeyPrefix+enc(uid)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return res, fmt.Errorf("record catalog state: %w", err)
		}
	}
	return res, nil
}

// msgID is the Nats-Msg-Id of a change: the same entity version gives the same id, so
// a poll repeated after a crash is deduplicated by JetStream.
func msgID(op, uid, etag string) string { return "catalog." + op + "." + uid + "." + etag }

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// state loads what the watcher last published, by uid.
func (w *Watcher) state(ctx context.Context) (map[string]seen, error) {
	out := map[string]seen{}
	watch, err := w.kv.Watch(ctx, stateKeyPrefix+">", jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read catalog state: %w", err)
	}
	defer func() { _ = watch.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-watch.Updates():
			if !ok {
				return nil, errors.New("read catalog state: watcher closed")
			}
			if e == nil {
				return out, nil
			}
			b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(e.Key(), stateKeyPrefix))
			if err != nil {
				continue
			}
			var s seen
			if json.Unmarshal(e.Value(), &s) == nil {
				out[string(b)] = s
			}
		}
	}
}

// page is the by-query answer.
type page struct {
	Items      []json.RawMessage `json:"items"`
	TotalItems int               `json:"totalItems"`
	PageInfo   struct {
		NextCursor string `json:"nextCursor"`
	} `json:"pageInfo"`
}

// maxPages bounds one listing, against a server that never stops paging.
const maxPages = 100000

// list walks every page of the query.
func (w *Watcher) list(ctx context.Context) ([]listed, error) {
	var out []listed
	seenUID := map[string]bool{}
	cursor := ""
	for range maxPages {
		q := url.Values{}
		q.Set("limit", strconv.Itoa(w.cfg.PageSize))
		q.Set("fields", strings.Join(Fields, ","))
		if cursor != "" {
			q.Set("cursor", cursor)
		} else {
			for _, f := range w.cfg.Filters {
				q.Add("filter", f)
			}
		}
		var p page
		if err := w.get(ctx, "/api/catalog/entities/by-query?"+q.Encode(), &p); err != nil {
			return nil, err
		}
		for _, raw := range p.Items {
			it, err := parse(raw)
			if err != nil {
				w.log.Warn().Err(err).Msg("catalog entity skipped")
				continue
			}
			if seenUID[it.uid] {
				continue // an entity that moved between pages while we read
			}
			seenUID[it.uid] = true
			out = append(out, it)
		}
		if p.PageInfo.NextCursor == "" {
			return out, nil
		}
		cursor = p.PageInfo.NextCursor
	}
	return nil, fmt.Errorf("catalog watcher: Backstage catalog: more than %d pages; stopped", maxPages)
}

func parse(raw json.RawMessage) (listed, error) {
	var e struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
			UID       string `json:"uid"`
			Etag      string `json:"etag"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return listed{}, fmt.Errorf("decode entity: %w", err)
	}
	// An entity whose ref does not normalise is still published (its consumer
	// dead-letters it with the reason) but cannot be deleted by ref later.
	ref, _ := mapping.EntityRef(e.Kind, e.Metadata.Namespace, e.Metadata.Name)
	uid := e.Metadata.UID
	if uid == "" {
		if ref == "" {
			return listed{}, fmt.Errorf("entity %s:%s/%s has neither a uid nor a valid ref", e.Kind, cmp.Or(e.Metadata.Namespace, mapping.DefaultNamespace), e.Metadata.Name)
		}
		uid = "ref:" + ref
	}
	return listed{uid: uid, ref: ref, etag: e.Metadata.Etag, raw: raw}, nil
}

// get performs one catalog request and decodes its JSON answer, turning Backstage's
// refusals into errors that say what to fix.
func (w *Watcher) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.cfg.BaseURL+path, nil)
	if err != nil {
		// The URL may hold BACKSTAGE_URL's credentials: only the reason is kept.
		return fmt.Errorf("catalog watcher: build request for %s: %w", path, stripURL(err))
	}
	req.Header.Set("Authorization", "Bearer "+w.cfg.Token.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "pdworker-catalogwatch/"+w.cfg.Holder)
	resp, err := w.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("catalog watcher: Backstage catalog at %s unreachable: %w", secret.RedactURL(w.cfg.BaseURL), stripURL(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("catalog watcher: Backstage catalog: read answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("catalog watcher: Backstage catalog refused BACKSTAGE_TOKEN (401%s): check that it matches a backend.auth.externalAccess static token in app-config", backstageMessage(body))
	case resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("catalog watcher: Backstage catalog: BACKSTAGE_TOKEN may not read the catalog (403%s): check the token's accessRestrictions (plugin catalog, permission catalog.entity.read)", backstageMessage(body))
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("catalog watcher: Backstage catalog: %s/api/catalog/entities/by-query not found (404): check BACKSTAGE_URL (the backend's base URL)", secret.RedactURL(w.cfg.BaseURL))
	case resp.StatusCode >= 300:
		return fmt.Errorf("catalog watcher: Backstage catalog: %d %s%s", resp.StatusCode, http.StatusText(resp.StatusCode), backstageMessage(body))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("catalog watcher: Backstage catalog: answer is not the by-query JSON: %w", err)
	}
	return nil
}

// backstageMessage extracts error.message from Backstage's error body, as ": <msg>".
func backstageMessage(body []byte) string {
	var e struct {
		Error struct {
			Name    string `json:"name"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error.Message == "" {
		return ""
	}
	if len(e.Error.Message) > 300 {
		e.Error.Message = e.Error.Message[:300] + "…"
	}
	return ": " + strings.TrimSpace(e.Error.Name+" "+e.Error.Message)
}

// stripURL drops the request URL (with its query) from a transport error.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
