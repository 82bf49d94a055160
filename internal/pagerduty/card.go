package pagerduty

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The reads behind the Backstage PagerDuty card (GET /services/{id}, on-calls,
// incidents, change events, standards, analytics) return PagerDuty's objects as raw
// JSON, so that the card API passes them through unchanged.

// maxListItems bounds the pages read for incidents and on-calls, so that one card view
// cannot walk an unbounded list (1000 = ten full pages).
const maxListItems = 1000

// serviceIncludes are the includes the card's service reads ask for.
var serviceIncludes = []string{"integrations", "escalation_policies"}

// GetServiceJSON returns GET /services/{id}?time_zone=UTC&include[]=integrations&include[]=escalation_policies
// as PagerDuty rendered the service.
func (c *Client) GetServiceJSON(ctx context.Context, id string) (json.RawMessage, error) {
	op := "get service " + id
	if err := c.checkID(op, id); err != nil {
		return nil, err
	}
	return call(ctx, c, op, func(ctx context.Context) (json.RawMessage, error) {
		q := url.Values{"time_zone": {"UTC"}, "include[]": serviceIncludes}
		var out struct {
			Service json.RawMessage `json:"service"`
		}
		if err := c.restDo(ctx, http.MethodGet, "/services/"+id, q, nil, &out); err != nil {
			return nil, err
		}
		if len(out.Service) == 0 {
			return nil, errors.New("response has no service")
		}
		return out.Service, nil
	})
}

// FindServiceByIntegrationKey returns the service that owns the integration key, or
// (nil, nil) when none does. It searches with GET /services?query=<key> (every page)
// and keeps only a service whose integrations really hold the key.
func (c *Client) FindServiceByIntegrationKey(ctx context.Context, key string) (json.RawMessage, error) {
	return call(ctx, c, "find service by integration key", func(ctx context.Context) (json.RawMessage, error) {
		if strings.TrimSpace(key) == "" {
			return nil, nil
		}
		var found json.RawMessage
		err := c.eachPage(ctx, "/services", url.Values{"query": {key}, "time_zone": {"UTC"}, "include[]": serviceIncludes}, "services",
			func(item json.RawMessage) bool {
				var svc struct {
					Integrations []struct {
						IntegrationKey string `json:"integration_key"`
					} `json:"integrations"`
				}
				if json.Unmarshal(item, &svc) != nil {
					return true
				}
				for _, in := range svc.Integrations {
					if in.IntegrationKey == key {
						found = item
						return false
					}
				}
				return true
			})
		return found, err
	})
}

// ListServicesJSON returns every service of the account (every page), with
// integrations, escalation policies and teams included.
func (c *Client) ListServicesJSON(ctx context.Context) ([]json.RawMessage, error) {
	return call(ctx, c, "list services", func(ctx context.Context) ([]json.RawMessage, error) {
		all := []json.RawMessage{}
		q := url.Values{"time_zone": {"UTC"}, "include[]": {"integrations", "escalation_policies", "teams"}}
		err := c.eachPage(ctx, "/services", q, "services", func(item json.RawMessage) bool {
			all = append(all, item)
			return true
		})
		return all, err
	})
}

// OnCall is one entry of GET /oncalls with the user included.
type OnCall struct {
	// EscalationLevel is the entry's level in its policy (1 is first).
	EscalationLevel int
	// UserID and UserName are read from User for sorting and de-duplication.
	UserID, UserName string
	// User is PagerDuty's full user object (include[]=users).
	User json.RawMessage
}

// ListOnCalls returns the current on-call entries of the escalation policies, reading
// every page (up to 1000 entries), with users included.
func (c *Client) ListOnCalls(ctx context.Context, escalationPolicyIDs []string) ([]OnCall, error) {
	return call(ctx, c, "list on-calls", func(ctx context.Context) ([]OnCall, error) {
		all := []OnCall{}
		q := url.Values{"time_zone": {"UTC"}, "include[]": {"users"}, "escalation_policy_ids[]": escalationPolicyIDs}
		var bad error
		err := c.eachPage(ctx, "/oncalls", q, "oncalls", func(item json.RawMessage) bool {
			var oc struct {
				EscalationLevel int             `json:"escalation_level"`
				User            json.RawMessage `json:"user"`
			}
			if err := json.Unmarshal(item, &oc); err != nil {
				bad = fmt.Errorf("decode on-call: %w", err)
				return false
			}
			var u struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			}
			_ = json.Unmarshal(oc.User, &u)
			all = append(all, OnCall{EscalationLevel: oc.EscalationLevel, UserID: u.ID, UserName: u.Name, User: oc.User})
			return len(all) < maxListItems
		})
		return all, cmp.Or(err, bad)
	})
}

// ListOpenIncidents returns the triggered and acknowledged incidents of a service
// whatever their age (date_range=all), sorted by created_at, reading every page (up to
// 1000 incidents).
func (c *Client) ListOpenIncidents(ctx context.Context, serviceID string) ([]json.RawMessage, error) {
	return call(ctx, c, "list incidents of service "+serviceID, func(ctx context.Context) ([]json.RawMessage, error) {
		all := []json.RawMessage{}
		q := url.Values{
			"time_zone": {"UTC"}, "sort_by": {"created_at"}, "date_range": {"all"},
			"statuses[]": {"triggered", "acknowledged"}, "service_ids[]": {serviceID},
		}
		err := c.eachPage(ctx, "/incidents", q, "incidents", func(item json.RawMessage) bool {
			all = append(all, item)
			return len(all) < maxListItems
		})
		return all, err
	})
}

// ListChangeEvents returns the latest limit change events of a service
// (GET /services/{id}/change_events), which go-pagerduty v1.8.0 lacks.
func (c *Client) ListChangeEvents(ctx context.Context, serviceID string, limit int) ([]json.RawMessage, error) {
	op := "list change events of service " + serviceID
	if err := c.checkID(op, serviceID); err != nil {
		return nil, err
	}
	return call(ctx, c, op, func(ctx context.Context) ([]json.RawMessage, error) {
		q := url.Values{"limit": {strconv.Itoa(limit)}, "time_zone": {"UTC"}, "sort_by": {"timestamp"}}
		var out struct {
			ChangeEvents []json.RawMessage `json:"change_events"`
		}
		if err := c.restDo(ctx, http.MethodGet, "/services/"+serviceID+"/change_events", q, nil, &out); err != nil {
			return nil, err
		}
		if out.ChangeEvents == nil {
			out.ChangeEvents = []json.RawMessage{}
		}
		return out.ChangeEvents, nil
	})
}

// GetStandardsScores returns GET /standards/scores/technical_services/{id}: the whole
// body ({resource_id, resource_type, score, standards}).
func (c *Client) GetStandardsScores(ctx context.Context, serviceID string) (json.RawMessage, error) {
	op := "get standards scores of service " + serviceID
	if err := c.checkID(op, serviceID); err != nil {
		return nil, err
	}
	return call(ctx, c, op, func(ctx context.Context) (json.RawMessage, error) {
		var out json.RawMessage
		if err := c.restDo(ctx, http.MethodGet, "/standards/scores/technical_services/"+serviceID, nil, nil, &out); err != nil {
			return nil, err
		}
		return out, nil
	})
}

// ServiceIncidentMetrics returns the data array of
// POST /analytics/metrics/incidents/services for one service between start and end.
func (c *Client) ServiceIncidentMetrics(ctx context.Context, serviceID string, start, end time.Time) (json.RawMessage, error) {
	return call(ctx, c, "get incident metrics of service "+serviceID, func(ctx context.Context) (json.RawMessage, error) {
		in := map[string]any{"filters": map[string]any{
			"created_at_start": start.UTC().Format(time.RFC3339),
			"created_at_end":   end.UTC().Format(time.RFC3339),
			"service_ids":      []string{serviceID},
		}}
		var out struct {
			Data json.RawMessage `json:"data"`
		}
		if err := c.restDo(ctx, http.MethodPost, "/analytics/metrics/incidents/services", nil, in, &out); err != nil {
			return nil, err
		}
		if len(out.Data) == 0 || string(out.Data) == "null" {
			return json.RawMessage(`[]`), nil
		}
		return out.Data, nil
	})
}

// eachPage walks an offset-paginated list, handing each item of the list field to fn
// until fn returns false or the last page.
func (c *Client) eachPage(ctx context.Context, path string, q url.Values, field string, fn func(json.RawMessage) bool) error {
	offset := 0
	for {
		pq := url.Values{}
		for k, v := range q {
			pq[k] = v
		}
		pq.Set("limit", strconv.Itoa(pageLimit))
		pq.Set("offset", strconv.Itoa(offset))
		var page map[string]json.RawMessage
		if err := c.restDo(ctx, http.MethodGet, path, pq, nil, &page); err != nil {
			return err
		}
		var items []json.RawMessage
		if err := json.Unmarshal(page[field], &items); err != nil {
			return fmt.Errorf("decode %s: %w", field, err)
		}
		for _, it := range items {
			if !fn(it) {
				return nil
			}
		}
		var more bool
		_ = json.Unmarshal(page["more"], &more)
		if !more || len(items) == 0 || offset+len(items)+pageLimit > 10000 {
			return nil
		}
		offset += len(items)
	}
}

// Event is an Events API v2 alert event (POST <events URL>/v2/enqueue).
type Event struct {
	RoutingKey  string        `json:"routing_key"`
	EventAction string        `json:"event_action"`
	DedupKey    string        `json:"dedup_key,omitempty"`
	Client      string        `json:"client,omitempty"`
	ClientURL   string        `json:"client_url,omitempty"`
	Payload     *EventPayload `json:"payload,omitempty"`
}

// EventPayload is the payload of a trigger event.
type EventPayload struct {
	Summary       string         `json:"summary"`
	Source        string         `json:"source"`
	Severity      string         `json:"severity"`
	Class         string         `json:"class,omitempty"`
	Component     string         `json:"component,omitempty"`
	CustomDetails map[string]any `json:"custom_details,omitempty"`
}

// EventResponse is the Events API's answer to an accepted event.
type EventResponse struct {
	Status   string `json:"status"`
	Message  string `json:"message"`
	DedupKey string `json:"dedup_key"`
}

// SendEvent sends an alert event to the account's Events API v2. The routing key is
// never part of an error. A 400 ("invalid event") is a permanent *APIError whose
// Errors are the Events API's details.
func (c *Client) SendEvent(ctx context.Context, e Event) (*EventResponse, error) {
	var details struct {
		Message string   `json:"message"`
		Errors  []string `json:"errors"`
	}
	res, err := call(ctx, c, "send event", func(ctx context.Context) (*EventResponse, error) {
		b, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encode event: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.eventsURL+"/v2/enqueue", bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("build request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "pdworker")
		resp, err := c.http.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			_ = json.Unmarshal(body, &details)
			return nil, &statusError{status: resp.StatusCode}
		}
		var out EventResponse
		if err := json.Unmarshal(body, &out); err != nil {
			return nil, fmt.Errorf("decode response: %w", err)
		}
		return &out, nil
	})
	var ae *APIError
	if errors.As(err, &ae) && ae.Message == "" && details.Message != "" {
		redact := func(s string) string {
			if e.RoutingKey != "" {
				s = strings.ReplaceAll(s, e.RoutingKey, "[redacted]")
			}
			return c.redact(s)
		}
		ae.Message = redact(details.Message)
		for _, d := range details.Errors {
			ae.Errors = append(ae.Errors, redact(d))
		}
	}
	return res, err
}
