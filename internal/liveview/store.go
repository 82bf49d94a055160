package liveview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/webhook"
)

// maxCASAttempts bounds the read-modify-write retries of one update; conflicts come
// from other workers updating the same service at the same moment.
const maxCASAttempts = 50

// ErrBadEvent is wrapped by Apply errors about the event itself (unreadable data, no
// service): retrying cannot help.
var ErrBadEvent = errors.New("live view: unusable event")

// ErrConflict is returned when an update lost the compare-and-set race
// maxCASAttempts times in a row; retrying later is safe.
var ErrConflict = errors.New("live view: too many concurrent updates of one service")

// Store reads and updates the live view in its key-value bucket. Safe for concurrent
// use by many workers in many processes.
type Store struct {
	kv jetstream.KeyValue
}

// NewStore opens the live-view bucket (events.BucketLiveView; Provision creates it).
func NewStore(ctx context.Context, js jetstream.JetStream) (*Store, error) {
	kv, err := js.KeyValue(ctx, events.BucketLiveView)
	if err != nil {
		return nil, fmt.Errorf("open key-value bucket %s: %w", events.BucketLiveView, err)
	}
	return &Store{kv: kv}, nil
}

// Result says what applying an event did.
type Result int

// Results of Apply.
const (
	// Applied: the view changed.
	Applied Result = iota + 1
	// Stale: the view already holds this event or a newer one; nothing changed.
	Stale
	// Ignored: the event does not concern the live view (notes, pings, unknown types).
	Ignored
)

// String names the result for logs and metrics.
func (r Result) String() string {
	switch r {
	case Applied:
		return "applied"
	case Stale:
		return "stale"
	case Ignored:
		return "ignored"
	}
	return "unknown"
}

// Apply applies one webhook event of account to the live view: incident lifecycle
// events (data.type "incident") update their service's open incidents, service.*
// events refresh or retire the service, anything else is Ignored. Errors wrapping
// ErrBadEvent concern the event itself; any other error is worth retrying.
func (st *Store) Apply(ctx context.Context, account string, ev webhook.Event) (Result, error) {
	ch := Change{At: ev.OccurredAt, EventID: ev.ID, EventType: ev.EventType}
	switch ev.ResourceType {
	case webhook.ResourceIncident:
		if !isIncidentData(ev) {
			return Ignored, nil
		}
		d, err := ev.Incident()
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrBadEvent, err)
		}
		if d.Service == nil || d.Service.ID == "" {
			return 0, fmt.Errorf("%w: incident %s in event %s names no service", ErrBadEvent, d.ID, ev.ID)
		}
		return st.applyIncident(ctx, account, ch, d)
	case webhook.ResourceService:
		if !strings.HasPrefix(ev.EventType, "service.") || ev.EventType == "service.custom_field_values.updated" {
			return Ignored, nil
		}
		d, err := ev.Service()
		if err != nil {
			return 0, fmt.Errorf("%w: %w", ErrBadEvent, err)
		}
		return st.update(ctx, serviceKey(account, d.ID), account, d.ID, func(s *Service) bool { return s.applyService(ch, d) })
	}
	return Ignored, nil
}

func (st *Store) applyIncident(ctx context.Context, account string, ch Change, d *webhook.IncidentData) (Result, error) {
	res, err := st.update(ctx, serviceKey(account, d.Service.ID), account, d.Service.ID, func(s *Service) bool { return s.applyIncident(ch, d) })
	if err != nil || res != Applied {
		return res, err
	}
	// The incident index says which service holds an incident, so that an incident
	// moved to another service (incident.service_updated) leaves the old one.
	prev, err := st.swapIndex(ctx, account, d.ID, d.Service.ID)
	if err != nil {
		return 0, err
	}
	if prev != "" && prev != d.Service.ID {
		if _, err := st.update(ctx, serviceKey(account, prev), account, prev, func(s *Service) bool { return s.leave(d.ID, ch) }); err != nil {
			return 0, err
		}
	}
	return Applied, nil
}

// swapIndex records serviceID as the incident's service and returns the one recorded
// before ("" if none).
func (st *Store) swapIndex(ctx context.Context, account, incidentID, serviceID string) (string, error) {
	key := incidentKey(account, incidentID)
	for range maxCASAttempts {
		e, err := st.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			if _, err := st.kv.Create(ctx, key, []byte(serviceID)); err == nil {
				return "", nil
			} else if !errors.Is(err, jetstream.ErrKeyExists) {
				return "", fmt.Errorf("index incident %s: %w", incidentID, err)
			}
			continue
		case err != nil:
			return "", fmt.Errorf("read incident index %s: %w", incidentID, err)
		}
		prev := string(e.Value())
		if prev == serviceID {
			return prev, nil
		}
		if _, err := st.kv.Update(ctx, key, []byte(serviceID), e.Revision()); err == nil {
			return prev, nil
		} else if !events.IsKVConflict(err) {
			return "", fmt.Errorf("index incident %s: %w", incidentID, err)
		}
	}
	return "", ErrConflict
}

// update runs fn on the service's document under compare-and-set.
func (st *Store) update(ctx context.Context, key, account, serviceID string, fn func(*Service) bool) (Result, error) {
	for range maxCASAttempts {
		svc, rev, err := st.load(ctx, key)
		if err != nil {
			return 0, err
		}
		if svc == nil {
			svc = newService(account, serviceID)
		}
		if !fn(svc) {
			return Stale, nil
		}
		b, err := json.Marshal(svc)
		if err != nil {
			return 0, fmt.Errorf("encode live view of service %s: %w", serviceID, err)
		}
		if rev == 0 {
			_, err = st.kv.Create(ctx, key, b)
		} else {
			_, err = st.kv.Update(ctx, key, b, rev)
		}
		if err == nil {
			return Applied, nil
		}
		if !events.IsKVConflict(err) {
			return 0, fmt.Errorf("store live view of service %s: %w", serviceID, err)
		}
	}
	return 0, ErrConflict
}

func (st *Store) load(ctx context.Context, key string) (*Service, uint64, error) {
	e, err := st.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read live view %s: %w", key, err)
	}
	svc := newService("", "")
	if err := json.Unmarshal(e.Value(), svc); err != nil {
		return nil, 0, fmt.Errorf("decode live view %s: %w", key, err)
	}
	if svc.Open == nil {
		svc.Open = map[string]Incident{}
	}
	if svc.Resolved == nil {
		svc.Resolved = map[string]Change{}
	}
	if svc.Counts == nil {
		svc.Counts = map[string]int{}
	}
	return svc, e.Revision(), nil
}

// Get returns the live view of one service, or (nil, nil) when no event about it has
// been applied.
func (st *Store) Get(ctx context.Context, account, serviceID string) (*Service, error) {
	svc, _, err := st.load(ctx, serviceKey(account, serviceID))
	return svc, err
}

// List returns the live view of every service of account ("" for every account).
func (st *Store) List(ctx context.Context, account string) ([]Service, error) {
	filter := "*.svc.*"
	if account != "" {
		filter = keyToken(account) + ".svc.*"
	}
	lister, err := st.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list live view: %w", err)
	}
	var out []Service
	for key := range lister.Keys() {
		svc, _, err := st.load(ctx, key)
		if err != nil {
			return nil, err
		}
		if svc != nil {
			out = append(out, *svc)
		}
	}
	return out, nil
}

func isIncidentData(ev webhook.Event) bool {
	var d struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(ev.Data, &d) == nil && d.Type == "incident"
}

func serviceKey(account, serviceID string) string {
	return keyToken(account) + ".svc." + keyToken(serviceID)
}

func incidentKey(account, incidentID string) string {
	return keyToken(account) + ".inc." + keyToken(incidentID)
}

// keyToken makes s one valid key token: PagerDuty ids and account ids pass as they
// are; other characters become '_'.
func keyToken(s string) string {
	if s == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '=':
			return r
		}
		return '_'
	}, s)
}
