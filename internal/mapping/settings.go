package mapping

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// SettingDependencySyncStrategy is the id of the dependency-sync strategy setting.
const SettingDependencySyncStrategy = "settings::service-dependency-sync-strategy"

// Dependency-sync strategies, the values of SettingDependencySyncStrategy.
const (
	StrategyDisabled  = "disabled"
	StrategyBackstage = "backstage"
	StrategyBoth      = "both"
	// StrategyPagerDuty is accepted for compatibility with the official plugin; it
	// would make PagerDuty the source of the catalog's dependsOn, which pdworker does
	// not write, so dependency sync applies nothing under it.
	StrategyPagerDuty = "pagerduty"
)

// ValidStrategy reports whether v is one of the four strategy values.
func ValidStrategy(v string) bool {
	switch v {
	case StrategyDisabled, StrategyBackstage, StrategyBoth, StrategyPagerDuty:
		return true
	}
	return false
}

// Setting returns a setting row, or (nil, nil) when it was never set.
func (s *Store) Setting(ctx context.Context, id string) (*Setting, error) {
	e, err := s.mappings.Get(ctx, settingKeyPrefix+enc(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read setting %s: %w", id, err)
	}
	var st Setting
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return nil, fmt.Errorf("decode setting %s: %w", id, err)
	}
	return &st, nil
}

// PutSetting stores a setting value with UpdatedAt = now and returns the row.
func (s *Store) PutSetting(ctx context.Context, id, value string) (Setting, error) {
	st := Setting{ID: id, Value: value, UpdatedAt: s.now().UTC()}
	body, err := json.Marshal(st)
	if err != nil {
		return Setting{}, err
	}
	if _, err := s.mappings.Put(ctx, settingKeyPrefix+enc(id), body); err != nil {
		return Setting{}, fmt.Errorf("store setting %s: %w", id, err)
	}
	return st, nil
}

// Strategy returns the dependency-sync strategy; a missing row means disabled.
func (s *Store) Strategy(ctx context.Context) (string, error) {
	st, err := s.Setting(ctx, SettingDependencySyncStrategy)
	if err != nil || st == nil {
		return StrategyDisabled, err
	}
	return st.Value, nil
}
