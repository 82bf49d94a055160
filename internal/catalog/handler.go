package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/internal/mapping"
	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/schemas"
	"github.com/pdworker/pdworker/workers"
)

// The PagerDuty annotations of a Backstage entity.
const (
	AnnotationServiceID      = "pagerduty.com/service-id"
	AnnotationIntegrationKey = "pagerduty.com/integration-key"
	AnnotationAccount        = "pagerduty.com/account"
)

// BackstageEntity is the part of a Backstage entity this service reads.
type BackstageEntity struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace,omitempty"`
		UID         string            `json:"uid,omitempty"`
		Etag        string            `json:"etag,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Spec struct {
		DependsOn []string `json:"dependsOn,omitempty"`
	} `json:"spec"`
	Relations []struct {
		Type      string `json:"type"`
		TargetRef string `json:"targetRef"`
	} `json:"relations,omitempty"`
}

// Ref returns the entity's normalised ref.
func (b *BackstageEntity) Ref() (string, error) {
	return mapping.EntityRef(b.Kind, b.Metadata.Namespace, b.Metadata.Name)
}

// DependsOn returns the normalised refs the entity depends on: its dependsOn relations
// when it has relations (Backstage's normalised form), else spec.dependsOn, where the
// kind is required and the namespace defaults to the entity's own.
func (b *BackstageEntity) DependsOn() ([]string, error) {
	var out []string
	if len(b.Relations) > 0 {
		for _, r := range b.Relations {
			if !strings.EqualFold(r.Type, "dependsOn") {
				continue
			}
			ref, err := mapping.NormalizeRef(r.TargetRef)
			if err != nil {
				return nil, fmt.Errorf("relation dependsOn %q: %w", r.TargetRef, err)
			}
			out = append(out, ref)
		}
		return out, nil
	}
	for _, d := range b.Spec.DependsOn {
		ref, err := mapping.NormalizeRefIn(d, "", b.Metadata.Namespace)
		if err != nil {
			return nil, fmt.Errorf("spec.dependsOn %q: %w", d, err)
		}
		out = append(out, ref)
	}
	return out, nil
}

// Marker records entities for dependency reconcile (depsync.Syncer.MarkChanged).
type Marker func(ctx context.Context, refs ...string) error

// Handler consumes catalog.entity.* messages.
type Handler struct {
	store     *mapping.Store
	validator *schemas.Validator
	accounts  *pagerduty.Accounts
	mark      Marker
	log       zerolog.Logger
}

// NewHandler builds the handler; mark may be nil (no dependency sync).
func NewHandler(store *mapping.Store, v *schemas.Validator, accounts *pagerduty.Accounts, mark Marker, log zerolog.Logger) *Handler {
	return &Handler{store: store, validator: v, accounts: accounts, mark: mark, log: log.With().Str("component", "catalog").Logger()}
}

// Handle applies one catalog message. Invalid messages are permanent failures (dead
// letters with the reason); store and PagerDuty failures are retried.
func (h *Handler) Handle(ctx context.Context, m *workers.Message) error {
	switch m.Subject {
	case events.SubjectCatalogUpserted:
		return h.upserted(ctx, m.Data)
	case events.SubjectCatalogDeleted:
		return h.deleted(ctx, m.Data)
	default:
		return workers.Permanent(fmt.Errorf("unexpected subject %q", m.Subject))
	}
}

func (h *Handler) upserted(ctx context.Context, data []byte) error {
	if err := h.validator.Validate(schemas.CatalogEntityUpserted, data); err != nil {
		return workers.Permanent(err)
	}
	var msg struct {
		Entity BackstageEntity `json:"entity"`
	}
	if err := json.Unmarshal(data, &msg); err != nil {
		return workers.Permanent(fmt.Errorf("decode catalog.entity.upserted: %w", err))
	}
	e := &msg.Entity
	ref, err := e.Ref()
	if err != nil {
		return workers.Permanent(err)
	}
	deps, err := e.DependsOn()
	if err != nil {
		return workers.Permanent(fmt.Errorf("entity %s: %w", ref, err))
	}
	ann := e.Metadata.Annotations
	snap := mapping.Entity{Ref: ref, UID: e.Metadata.UID, Etag: e.Metadata.Etag, DependsOn: deps,
		ServiceID: strings.TrimSpace(ann[AnnotationServiceID]), IntegrationKey: strings.TrimSpace(ann[AnnotationIntegrationKey]),
		Account: strings.TrimSpace(ann[AnnotationAccount])}
	if snap.ServiceID == "" && snap.IntegrationKey != "" {
		prev, err := h.store.Entity(ctx, ref)
		if err != nil {
			return err
		}
		if err := h.resolveKey(ctx, &snap, prev); err != nil {
			return err
		}
	}
	old, err := h.store.PutEntity(ctx, snap)
	if err != nil {
		return err
	}
	if h.mark != nil && changed(old, snap) {
		return h.mark(ctx, ref)
	}
	return nil
}

// resolveKey finds the service that owns an integration key (verified, not just the
// first search hit). The answer is reused while the key and account are unchanged.
func (h *Handler) resolveKey(ctx context.Context, snap *mapping.Entity, old *mapping.Entity) error {
	if old != nil && old.IntegrationKey == snap.IntegrationKey && old.Account == snap.Account && old.ServiceID != "" {
		snap.ServiceID = old.ServiceID
		return nil
	}
	if h.accounts == nil {
		return nil
	}
	c, err := h.accounts.Client(snap.Account)
	if err != nil {
		h.log.Warn().Str("entity", snap.Ref).Str("account", snap.Account).Msg("entity names an unknown PagerDuty account; left unmapped")
		return nil
	}
	raw, err := c.FindServiceByIntegrationKey(ctx, snap.IntegrationKey)
	if err != nil {
		if pagerduty.IsRetryable(err) {
			return err
		}
		h.log.Warn().Err(err).Str("entity", snap.Ref).Msg("cannot resolve the integration key; entity left unmapped")
		return nil
	}
	if raw == nil {
		h.log.Warn().Str("entity", snap.Ref).Msg("no service owns the entity's integration key; entity left unmapped")
		return nil
	}
	var svc struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(raw, &svc); err != nil {
		return fmt.Errorf("decode service: %w", err)
	}
	snap.ServiceID = svc.ID
	return nil
}

func changed(old *mapping.Entity, e mapping.Entity) bool {
	if old == nil {
		return true
	}
	deps := slices.Clone(e.DependsOn)
	slices.Sort(deps)
	deps = slices.Compact(deps)
	return old.ServiceID != e.ServiceID || old.Account != e.Account || !slices.Equal(old.DependsOn, deps)
}

func (h *Handler) deleted(ctx context.Context, data []byte) error {
	if err := h.validator.Validate(schemas.CatalogEntityDeleted, data); err != nil {
		return workers.Permanent(err)
	}
	var msg struct {
		EntityRef string `json:"entityRef"`
	}
	if err := json.Unmarshal(data, &msg); err != nil {
		return workers.Permanent(fmt.Errorf("decode catalog.entity.deleted: %w", err))
	}
	ref, err := mapping.NormalizeRef(msg.EntityRef)
	if err != nil {
		return workers.Permanent(err)
	}
	old, err := h.store.DeleteEntity(ctx, ref)
	if err != nil {
		return err
	}
	if old != nil {
		h.log.Info().Str("entity", ref).Msg("entity removed from the catalog; its PagerDuty dependencies are left as they are")
	}
	return nil
}
