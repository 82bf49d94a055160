package pdsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Alert grouping types.
const (
	groupingTime                    = "time"
	groupingIntelligent             = "intelligent"
	groupingContentBased            = "content_based"
	groupingContentBasedIntelligent = "content_based_intelligent"
	groupingSettingReference        = "alert_grouping_setting_reference"
)

// GroupingConfig is the `config` of alert grouping, for both service-level
// alert_grouping_parameters (Timeout in minutes) and alert grouping settings (Timeout
// in seconds). Only the fields valid for the type are set.
type GroupingConfig struct {
	Timeout    *int     `json:"timeout,omitempty"`
	TimeWindow *int     `json:"time_window,omitempty"`
	Aggregate  string   `json:"aggregate,omitempty"`
	Fields     []string `json:"fields,omitempty"`
	IAGFields  []string `json:"iag_fields,omitempty"`
}

func (c *GroupingConfig) clone() *GroupingConfig {
	if c == nil {
		return nil
	}
	out := *c
	out.Timeout = clonePtr(c.Timeout)
	out.TimeWindow = clonePtr(c.TimeWindow)
	out.Fields = slices.Clone(c.Fields)
	out.IAGFields = slices.Clone(c.IAGFields)
	return &out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// GroupingParameters is a service's alert_grouping_parameters.
type GroupingParameters struct {
	Type   string          `json:"type"`
	Config *GroupingConfig `json:"config,omitempty"`
}

func (p *GroupingParameters) clone() *GroupingParameters {
	if p == nil {
		return nil
	}
	return &GroupingParameters{Type: p.Type, Config: p.Config.clone()}
}

// parseServiceGrouping validates a service's alert_grouping_parameters with the strict
// rules PagerDuty has applied since 2024-06-13: only `type` and `config`, only the
// config keys of the type, `time` needs `timeout` (minutes, 0–1440), `intelligent` may
// have `time_window` (0 or 300–3600 seconds), `content_based` needs `aggregate` (all or
// any) and `fields` and may have `time_window` (0, 300–3600 or 86400). Any violation is
// the one answer PagerDuty gives: 400/2001 "Config is invalid.".
//
// It returns ignore=true for an echoed alert_grouping_setting_reference (which
// PagerDuty ignores) and nil parameters when grouping is turned off (null, or no type).
func parseServiceGrouping(raw json.RawMessage) (params *GroupingParameters, ignore bool, err *apiError) {
	invalid := invalidInput(msgConfigInvalid)
	if isNull(raw) {
		return nil, false, nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, false, invalid
	}
	var typ string
	if t, ok := m["type"]; ok && !isNull(t) {
		if json.Unmarshal(t, &typ) != nil {
			return nil, false, invalid
		}
	}
	if typ == groupingSettingReference {
		return nil, true, nil
	}
	for k := range m {
		if k != "type" && k != "config" {
			return nil, false, invalid
		}
	}
	cfgRaw := m["config"]
	cfg := &GroupingConfig{}
	switch typ {
	case "":
		if !isNull(cfgRaw) {
			return nil, false, invalid
		}
		return nil, false, nil
	case groupingTime:
		f, ok := configFields(cfgRaw, "timeout")
		if !ok || f == nil {
			return nil, false, invalid
		}
		t, present, ok := intField(f, "timeout")
		if !ok || !present || t < 0 || t > 1440 {
			return nil, false, invalid
		}
		cfg.Timeout = &t
	case groupingIntelligent:
		f, ok := configFields(cfgRaw, "time_window")
		if !ok {
			return nil, false, invalid
		}
		tw, present, ok := intField(f, "time_window")
		if !ok || (present && tw != 0 && (tw < 300 || tw > 3600)) {
			return nil, false, invalid
		}
		if present {
			cfg.TimeWindow = &tw
		}
		if f == nil {
			cfg = nil
		}
	case groupingContentBased:
		f, ok := configFields(cfgRaw, "aggregate", "fields", "time_window")
		if !ok || f == nil {
			return nil, false, invalid
		}
		agg, aggOK := stringField(f, "aggregate")
		fields, fieldsOK := stringListField(f, "fields")
		tw, present, twOK := intField(f, "time_window")
		if !aggOK || (agg != "all" && agg != "any") || !fieldsOK || !twOK ||
			(present && tw != 0 && tw != 86400 && (tw < 300 || tw > 3600)) {
			return nil, false, invalid
		}
		cfg.Aggregate, cfg.Fields = agg, fields
		if present {
			cfg.TimeWindow = &tw
		}
	default:
		return nil, false, invalid
	}
	return &GroupingParameters{Type: typ, Config: cfg}, false, nil
}

// paramsFromSetting expresses a setting as service-level parameters when the service
// API can (one service; time with whole minutes, intelligent or content_based).
func paramsFromSetting(gs *groupingSetting) (*GroupingParameters, bool) {
	if len(gs.serviceIDs) != 1 {
		return nil, false
	}
	c := gs.config
	switch gs.typ {
	case groupingTime:
		if c.Timeout != nil && *c.Timeout%60 != 0 {
			return nil, false
		}
		minutes := 0
		if c.Timeout != nil {
			minutes = *c.Timeout / 60
		}
		return &GroupingParameters{Type: groupingTime, Config: &GroupingConfig{Timeout: &minutes}}, true
	case groupingIntelligent:
		if c.TimeWindow == nil {
			return &GroupingParameters{Type: groupingIntelligent}, true
		}
		return &GroupingParameters{Type: groupingIntelligent, Config: &GroupingConfig{TimeWindow: clonePtr(c.TimeWindow)}}, true
	case groupingContentBased:
		return &GroupingParameters{Type: groupingContentBased, Config: &GroupingConfig{
			Aggregate: c.Aggregate, Fields: slices.Clone(c.Fields), TimeWindow: clonePtr(c.TimeWindow),
		}}, true
	}
	return nil, false
}

// isNull reports whether a field is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// configFields decodes a config object, allowing only the given keys. A null or absent
// config gives a nil map and ok.
func configFields(raw json.RawMessage, allowed ...string) (map[string]json.RawMessage, bool) {
	if isNull(raw) {
		return nil, true
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil, false
	}
	if m == nil {
		m = map[string]json.RawMessage{}
	}
	return m, unknownKey(m, allowed...) == ""
}

// unknownKey returns a key of m that is not allowed, or "".
func unknownKey(m map[string]json.RawMessage, allowed ...string) string {
	for k := range m {
		if !slices.Contains(allowed, k) {
			return k
		}
	}
	return ""
}

// intField reads an integer field; null or absent is present=false. A fraction, a
// string or anything else is ok=false.
func intField(m map[string]json.RawMessage, key string) (v int, present, ok bool) {
	raw, has := m[key]
	if !has || isNull(raw) {
		return 0, false, true
	}
	var n json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&n) != nil {
		return 0, true, false
	}
	i, err := n.Int64()
	if err != nil {
		return 0, true, false
	}
	return int(i), true, true
}

// stringField reads a non-empty string field.
func stringField(m map[string]json.RawMessage, key string) (string, bool) {
	var s string
	if json.Unmarshal(m[key], &s) != nil || s == "" {
		return "", false
	}
	return s, true
}

// stringListField reads a non-empty list of non-empty strings.
func stringListField(m map[string]json.RawMessage, key string) ([]string, bool) {
	var l []string
	if json.Unmarshal(m[key], &l) != nil || len(l) == 0 || slices.Contains(l, "") {
		return nil, false
	}
	return l, true
}

// nullableString reads a string-or-null field that is present in m.
func nullableString(m map[string]json.RawMessage, key string) (*string, error) {
	if isNull(m[key]) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(m[key], &s); err != nil {
		return nil, fmt.Errorf("%s: must be a string", key)
	}
	return &s, nil
}
