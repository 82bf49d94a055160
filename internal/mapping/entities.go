package mapping

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// PutEntity stores the snapshot of a catalog entity (e.Ref normalised first) and keeps
// the service-annotation index in step. It returns the previous snapshot, nil if none.
func (s *Store) PutEntity(ctx context.Context, e Entity) (*Entity, error) {
	ref, err := NormalizeRef(e.Ref)
	if err != nil {
		return nil, err
	}
	e.Ref = ref
	e.DependsOn = sortedUnique(e.DependsOn)
	if e.UpdatedAt.IsZero() {
		e.UpdatedAt = s.now().UTC()
	}
	old, err := s.Entity(ctx, ref)
	if err != nil {
		return nil, err
	}
	if old != nil && old.ServiceID != "" && old.ServiceID != e.ServiceID {
		if err := s.entities.Delete(ctx, annotationIdxPrefix+enc(old.ServiceID)+"."+enc(ref)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("unindex entity %s: %w", ref, err)
		}
	}
	if e.ServiceID != "" && (old == nil || old.ServiceID != e.ServiceID || old.Account != e.Account) {
		if _, err := s.entities.Put(ctx, annotationIdxPrefix+enc(e.ServiceID)+"."+enc(ref), []byte(e.Account)); err != nil {
			return nil, fmt.Errorf("index entity %s: %w", ref, err)
		}
	}
	body, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	if _, err := s.entities.Put(ctx, snapshotKeyPrefix+enc(ref), body); err != nil {
		return nil, fmt.Errorf("store entity %s: %w", ref, err)
	}
	return old, nil
}

// Entity returns the snapshot of an entity, or (nil, nil) when none.
func (s *Store) Entity(ctx context.Context, entityRef string) (*Entity, error) {
	ref, err := NormalizeRef(entityRef)
	if err != nil {
		return nil, err
	}
	kve, err := s.entities.Get(ctx, snapshotKeyPrefix+enc(ref))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read entity %s: %w", ref, err)
	}
	var e Entity
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		return nil, fmt.Errorf("decode entity %s: %w", ref, err)
	}
	return &e, nil
}

// DeleteEntity removes the snapshot of an entity and its index entries. It returns the
// removed snapshot, nil if there was none.
func (s *Store) DeleteEntity(ctx context.Context, entityRef string) (*Entity, error) {
	old, err := s.Entity(ctx, entityRef)
	if err != nil || old == nil {
		return nil, err
	}
	if old.ServiceID != "" {
		if err := s.entities.Delete(ctx, annotationIdxPrefix+enc(old.ServiceID)+"."+enc(old.Ref)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("unindex entity %s: %w", old.Ref, err)
		}
	}
	if err := s.entities.Delete(ctx, snapshotKeyPrefix+enc(old.Ref)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("delete entity %s: %w", old.Ref, err)
	}
	return old, nil
}

// Entities returns every entity snapshot, sorted by ref.
func (s *Store) Entities(ctx context.Context) ([]Entity, error) {
	var out []Entity
	err := s.each(ctx, s.entities, snapshotKeyPrefix+">", func(_ string, v []byte) error {
		var e Entity
		if err := json.Unmarshal(v, &e); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list entities: %w", err)
	}
	slices.SortFunc(out, func(a, b Entity) int { return strings.Compare(a.Ref, b.Ref) })
	return out, nil
}

func sortedUnique(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// Binding is the effective link of one entity to a PagerDuty service.
type Binding struct {
	EntityRef      string
	ServiceID      string
	IntegrationKey string
	// Account is the account id as mapped or annotated ("" = the default account).
	Account string
	// Explicit tells whether an explicit mapping (rather than annotations) decided it.
	Explicit bool
}

// View is a consistent in-memory picture of every mapping and entity snapshot, for
// work that resolves many refs at once (dependency sync, the mapping list).
type View struct {
	// Entities holds every snapshot by ref.
	Entities map[string]Entity
	// Mappings holds every explicit mapping by service id.
	Mappings map[string]Mapping
	byEntity map[string]Binding
}

// View loads every mapping and every entity snapshot and computes the effective
// bindings with the same precedence as ResolveService.
func (s *Store) View(ctx context.Context) (*View, error) {
	ms, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	es, err := s.Entities(ctx)
	if err != nil {
		return nil, err
	}
	return NewView(ms, es), nil
}

// NewView computes effective bindings from explicit mappings and entity snapshots.
// Explicit mappings win: an entity named by an explicit mapping is bound to that
// service (the most recently processed one when several name it), a service with an
// explicit mapping is bound only as that mapping says ("" = to nothing), and the
// annotations of the other entities bind them to services that have no explicit
// mapping (the lowest ref wins when several entities name one service).
func NewView(ms []Mapping, es []Entity) *View {
	v := &View{Entities: map[string]Entity{}, Mappings: map[string]Mapping{}, byEntity: map[string]Binding{}}
	for _, e := range es {
		v.Entities[e.Ref] = e
	}
	for _, m := range ms {
		v.Mappings[m.ServiceID] = m
		if m.EntityRef == "" {
			continue
		}
		if b, ok := v.byEntity[m.EntityRef]; ok && v.Mappings[b.ServiceID].ProcessedDate.After(m.ProcessedDate) {
			continue
		}
		v.byEntity[m.EntityRef] = Binding{EntityRef: m.EntityRef, ServiceID: m.ServiceID, IntegrationKey: m.IntegrationKey, Account: m.Account, Explicit: true}
	}
	taken := map[string]bool{}
	for _, e := range es { // sorted by ref: the lowest ref claims a service first
		if _, ok := v.byEntity[e.Ref]; ok || e.ServiceID == "" {
			continue
		}
		if _, ok := v.Mappings[e.ServiceID]; ok || taken[e.Account+"\x00"+e.ServiceID] {
			continue
		}
		taken[e.Account+"\x00"+e.ServiceID] = true
		v.byEntity[e.Ref] = Binding{EntityRef: e.Ref, ServiceID: e.ServiceID, IntegrationKey: e.IntegrationKey, Account: e.Account}
	}
	return v
}

// Binding returns the effective binding of an entity ref (normalised), if any.
func (v *View) Binding(ref string) (Binding, bool) {
	b, ok := v.byEntity[ref]
	return b, ok
}

// Bindings returns every effective binding, sorted by entity ref.
func (v *View) Bindings() []Binding {
	out := make([]Binding, 0, len(v.byEntity))
	for _, b := range v.byEntity {
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b Binding) int { return strings.Compare(a.EntityRef, b.EntityRef) })
	return out
}
