package mapping

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdworker/pdworker/events"
)

// Key prefixes. Every variable part of a key is base64url-encoded, so any service id
// or entity ref gives a valid key.
const (
	// mappings bucket
	serviceKeyPrefix = "svc."     // svc.<service> → Mapping
	entityIdxPrefix  = "ent."     // ent.<ref>.<service> → "" (explicit mappings by entity)
	settingKeyPrefix = "setting." // setting.<id> → Setting
	// catalog_entities bucket
	snapshotKeyPrefix   = "e." // e.<ref> → Entity
	annotationIdxPrefix = "s." // s.<service>.<ref> → account annotation
)

// casAttempts bounds compare-and-set retries when replicas write the same key at once.
const casAttempts = 8

// Mapping is an explicit link between a PagerDuty service and a Backstage entity. Its
// JSON form is the official plugin's database row (GET /mapping/entity/…).
type Mapping struct {
	// Index is the row's sequence number, assigned on first insert.
	Index uint64 `json:"index"`
	// ID is a UUID assigned on first insert and kept on updates.
	ID        string `json:"id"`
	ServiceID string `json:"serviceId"`
	// IntegrationKey is the service's Backstage integration key ("" if unknown).
	IntegrationKey string `json:"integrationKey"`
	// EntityRef is the normalised entity ref; "" means explicitly unmapped.
	EntityRef string `json:"entityRef"`
	// Account is the PagerDuty account id ("" = the default account).
	Account       string    `json:"account"`
	ProcessedDate time.Time `json:"processedDate"`
	// ServiceDeletedAt is when PagerDuty reported the service deleted (a
	// service.deleted webhook, see MarkServiceDeleted); absent while it exists.
	ServiceDeletedAt *time.Time `json:"serviceDeletedAt,omitempty"`
}

// Setting is one plugin setting row (GET /settings/:id).
type Setting struct {
	ID        string    `json:"id"`
	Value     string    `json:"value"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Entity is what pdworker keeps of a Backstage catalog entity: only what mapping and
// dependency sync need.
type Entity struct {
	// Ref is the normalised ref "kind:namespace/name".
	Ref  string `json:"ref"`
	UID  string `json:"uid,omitempty"`
	Etag string `json:"etag,omitempty"`
	// ServiceID is the pagerduty.com/service-id annotation or, for an entity with only
	// pagerduty.com/integration-key, the service that key was verified to belong to.
	ServiceID      string `json:"serviceId,omitempty"`
	IntegrationKey string `json:"integrationKey,omitempty"`
	// Account is the pagerduty.com/account annotation ("" = the default account).
	Account string `json:"account,omitempty"`
	// DependsOn holds the normalised refs of spec.dependsOn, sorted, without duplicates.
	DependsOn []string  `json:"dependsOn,omitempty"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// Store keeps mappings, settings and entity snapshots in JetStream key-value buckets.
// It is safe for concurrent use and across replicas.
type Store struct {
	mappings jetstream.KeyValue
	entities jetstream.KeyValue
	now      func() time.Time
}

// NewStore opens the mappings and catalog entity buckets, which events.Provision
// creates.
func NewStore(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	m, err := js.KeyValue(ctx, events.BucketMappings)
	if err != nil {
		return nil, fmt.Errorf("open key-value bucket %s: %w", events.BucketMappings, err)
	}
	e, err := js.KeyValue(ctx, events.BucketCatalogEntities)
	if err != nil {
		return nil, fmt.Errorf("open key-value bucket %s: %w", events.BucketCatalogEntities, err)
	}
	return &Store{mappings: m, entities: e, now: time.Now}, nil
}

func enc(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func dec(s string) string {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return ""
	}
	return string(b)
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// Put inserts or updates the mapping of m.ServiceID. EntityRef is normalised ("" stays
// "" and means explicitly unmapped); ID and Index are kept from an existing row or
// assigned on insert; ProcessedDate is set to now. It returns the stored row.
func (s *Store) Put(ctx context.Context, m Mapping) (Mapping, error) {
	if strings.TrimSpace(m.ServiceID) == "" {
		return Mapping{}, errors.New("mapping: serviceId is required")
	}
	if m.EntityRef != "" {
		ref, err := NormalizeRef(m.EntityRef)
		if err != nil {
			return Mapping{}, err
		}
		m.EntityRef = ref
	}
	key := serviceKeyPrefix + enc(m.ServiceID)
	for range casAttempts {
		old, rev, err := s.getMapping(ctx, key)
		if err != nil {
			return Mapping{}, err
		}
		next := m
		next.ProcessedDate = s.now().UTC()
		if old != nil {
			next.ID, next.Index = old.ID, old.Index
		} else {
			next.ID = newUUID()
		}
		body, err := json.Marshal(next)
		if err != nil {
			return Mapping{}, err
		}
		var newRev uint64
		if old == nil {
			newRev, err = s.mappings.Create(ctx, key, body)
		} else {
			newRev, err = s.mappings.Update(ctx, key, body, rev)
		}
		if events.IsKVConflict(err) {
			continue
		}
		if err != nil {
			return Mapping{}, fmt.Errorf("store mapping of service %s: %w", m.ServiceID, err)
		}
		if old == nil {
			// The first revision numbers the row, like the plugin's auto-increment index.
			next.Index = newRev
			if body, err = json.Marshal(next); err == nil {
				_, err = s.mappings.Update(ctx, key, body, newRev)
			}
			if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return Mapping{}, fmt.Errorf("store mapping of service %s: %w", m.ServiceID, err)
			}
		}
		if err := s.reindexEntity(ctx, old, next); err != nil {
			return Mapping{}, err
		}
		return next, nil
	}
	return Mapping{}, fmt.Errorf("store mapping of service %s: too many concurrent updates", m.ServiceID)
}

func (s *Store) reindexEntity(ctx context.Context, old *Mapping, next Mapping) error {
	if old != nil && old.EntityRef != "" && old.EntityRef != next.EntityRef {
		if err := s.mappings.Delete(ctx, entityIdxPrefix+enc(old.EntityRef)+"."+enc(next.ServiceID)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("unindex mapping of %s: %w", old.EntityRef, err)
		}
	}
	if next.EntityRef != "" {
		if _, err := s.mappings.Put(ctx, entityIdxPrefix+enc(next.EntityRef)+"."+enc(next.ServiceID), nil); err != nil {
			return fmt.Errorf("index mapping of %s: %w", next.EntityRef, err)
		}
	}
	return nil
}

func (s *Store) getMapping(ctx context.Context, key string) (*Mapping, uint64, error) {
	e, err := s.mappings.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read mapping: %w", err)
	}
	var m Mapping
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return nil, 0, fmt.Errorf("decode mapping %s: %w", key, err)
	}
	return &m, e.Revision(), nil
}

// ByService returns the explicit mapping of a service, or (nil, nil) when none.
func (s *Store) ByService(ctx context.Context, serviceID string) (*Mapping, error) {
	if serviceID == "" {
		return nil, nil
	}
	m, _, err := s.getMapping(ctx, serviceKeyPrefix+enc(serviceID))
	return m, err
}

// ByEntity returns the explicit mapping that points at entityRef (normalised first),
// or (nil, nil) when none. When several services point at one entity, the most
// recently processed one wins.
func (s *Store) ByEntity(ctx context.Context, entityRef string) (*Mapping, error) {
	ref, err := NormalizeRef(entityRef)
	if err != nil {
		return nil, err
	}
	keys, err := s.keys(ctx, s.mappings, entityIdxPrefix+enc(ref)+".>")
	if err != nil {
		return nil, err
	}
	var best *Mapping
	for _, k := range keys {
		svc := dec(k[strings.LastIndexByte(k, '.')+1:])
		m, err := s.ByService(ctx, svc)
		if err != nil {
			return nil, err
		}
		if m == nil || m.EntityRef != ref {
			continue
		}
		if best == nil || m.ProcessedDate.After(best.ProcessedDate) {
			best = m
		}
	}
	return best, nil
}

// List returns every explicit mapping, sorted by service id.
func (s *Store) List(ctx context.Context) ([]Mapping, error) {
	var out []Mapping
	err := s.each(ctx, s.mappings, serviceKeyPrefix+">", func(_ string, v []byte) error {
		var m Mapping
		if err := json.Unmarshal(v, &m); err != nil {
			return err
		}
		out = append(out, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list mappings: %w", err)
	}
	slices.SortFunc(out, func(a, b Mapping) int { return strings.Compare(a.ServiceID, b.ServiceID) })
	return out, nil
}

// ResolveService returns the entity a service is effectively mapped to: its explicit
// mapping first (an explicit "" means unmapped, ok=false), else the catalog entity
// whose annotations name the service (the lowest ref when several do) and which has no
// explicit mapping of its own. Accounts match when equal or when either is "" (an
// annotation without pagerduty.com/account names the default account).
func (s *Store) ResolveService(ctx context.Context, account, serviceID string) (string, bool, error) {
	m, err := s.ByService(ctx, serviceID)
	if err != nil {
		return "", false, err
	}
	if m != nil {
		if m.EntityRef == "" || !AccountsMatch(account, m.Account) {
			return "", false, nil
		}
		return m.EntityRef, true, nil
	}
	var candidates []string
	err = s.each(ctx, s.entities, annotationIdxPrefix+enc(serviceID)+".>", func(k string, v []byte) error {
		if AccountsMatch(account, string(v)) {
			candidates = append(candidates, dec(k[strings.LastIndexByte(k, '.')+1:]))
		}
		return nil
	})
	if err != nil {
		return "", false, fmt.Errorf("resolve service %s: %w", serviceID, err)
	}
	slices.Sort(candidates)
	for _, ref := range candidates {
		own, err := s.ByEntity(ctx, ref)
		if err != nil {
			return "", false, err
		}
		if own == nil {
			return ref, true, nil
		}
	}
	return "", false, nil
}

// AccountsMatch reports whether two account ids name the same account, "" standing
// for the default account and matching any.
func AccountsMatch(a, b string) bool { return a == "" || b == "" || a == b }

// keys lists the keys matching filter (deleted keys excluded).
func (s *Store) keys(ctx context.Context, kv jetstream.KeyValue, filter string) ([]string, error) {
	var out []string
	err := s.eachEntry(ctx, kv, filter, true, func(k string, _ []byte) error {
		out = append(out, k)
		return nil
	})
	return out, err
}

// each calls fn for the current value of every key matching filter.
func (s *Store) each(ctx context.Context, kv jetstream.KeyValue, filter string, fn func(key string, value []byte) error) error {
	return s.eachEntry(ctx, kv, filter, false, fn)
}

func (s *Store) eachEntry(ctx context.Context, kv jetstream.KeyValue, filter string, metaOnly bool, fn func(key string, value []byte) error) error {
	opts := []jetstream.WatchOpt{jetstream.IgnoreDeletes()}
	if metaOnly {
		opts = append(opts, jetstream.MetaOnly())
	}
	w, err := kv.Watch(ctx, filter, opts...)
	if err != nil {
		return err
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("key-value watcher closed")
			}
			if e == nil {
				return nil // every current value has been delivered
			}
			if err := fn(e.Key(), e.Value()); err != nil {
				return err
			}
		}
	}
}
