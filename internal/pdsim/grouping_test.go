package pdsim_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	pagerduty "github.com/PagerDuty/go-pagerduty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

func TestServiceAlertGroupingParameters(t *testing.T) {
	sim, srv := newSim(t, pdsim.Options{})
	body := func(name, params string) string {
		return fmt.Sprintf(`{"service":{"name":%q,"escalation_policy":{"id":"PACME01","type":"escalation_policy_reference","teams":null},"alert_grouping_parameters":%s}}`, name, params)
	}
	tests := []struct {
		name       string
		params     string
		wantStatus int
	}{
		{"time until resolved", `{"type":"time","config":{"timeout":0}}`, http.StatusCreated},
		{"time 1440 minutes", `{"type":"time","config":{"timeout":1440}}`, http.StatusCreated},
		{"intelligent without config", `{"type":"intelligent"}`, http.StatusCreated},
		{"intelligent with window", `{"type":"intelligent","config":{"time_window":300}}`, http.StatusCreated},
		{"content based", `{"type":"content_based","config":{"aggregate":"all","time_window":0,"fields":["source","summary"]}}`, http.StatusCreated},
		{"content based 86400", `{"type":"content_based","config":{"aggregate":"any","time_window":86400,"fields":["source"]}}`, http.StatusCreated},
		{"off", `{"type":null}`, http.StatusCreated},
		{"null", `null`, http.StatusCreated},
		{"echoed setting reference is ignored", `{"id":"PXXXXXX","type":"alert_grouping_setting_reference","summary":"x"}`, http.StatusCreated},
		{"time without config", `{"type":"time"}`, http.StatusBadRequest},
		{"time with empty config", `{"type":"time","config":{}}`, http.StatusBadRequest},
		{"time over 1440", `{"type":"time","config":{"timeout":1441}}`, http.StatusBadRequest},
		{"time negative", `{"type":"time","config":{"timeout":-1}}`, http.StatusBadRequest},
		{"time fraction", `{"type":"time","config":{"timeout":1.5}}`, http.StatusBadRequest},
		{"time with time_window", `{"type":"time","config":{"timeout":5,"time_window":300}}`, http.StatusBadRequest},
		{"time with aggregate", `{"type":"time","config":{"timeout":5,"aggregate":"all"}}`, http.StatusBadRequest},
		{"intelligent with timeout", `{"type":"intelligent","config":{"timeout":5}}`, http.StatusBadRequest},
		{"intelligent window too short", `{"type":"intelligent","config":{"time_window":60}}`, http.StatusBadRequest},
		{"intelligent window too long", `{"type":"intelligent","config":{"time_window":3601}}`, http.StatusBadRequest},
		{"content based bad aggregate", `{"type":"content_based","config":{"aggregate":"some","fields":["source"]}}`, http.StatusBadRequest},
		{"content based no fields", `{"type":"content_based","config":{"aggregate":"all"}}`, http.StatusBadRequest},
		{"content based with timeout", `{"type":"content_based","config":{"aggregate":"all","fields":["a"],"timeout":5}}`, http.StatusBadRequest},
		{"unknown type", `{"type":"magic"}`, http.StatusBadRequest},
		{"extra top-level key", `{"type":"intelligent","window":5}`, http.StatusBadRequest},
		{"config without type", `{"config":{"timeout":5}}`, http.StatusBadRequest},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := call(t, srv, http.MethodPost, "/services", acme, body(fmt.Sprintf("svc-%d", i), tt.params))
			require.Equal(t, tt.wantStatus, resp.StatusCode, string(b))
			if tt.wantStatus == http.StatusBadRequest {
				e := decodeError(t, b)
				assert.Equal(t, 2001, e.Error.Code)
				assert.Equal(t, "Invalid Input Provided", e.Error.Message)
				assert.Equal(t, []string{"Config is invalid."}, e.Error.Errors)
			}
		})
	}

	t.Run("go-pagerduty nil timeout is invalid", func(t *testing.T) {
		_, err := pdClient(srv, acme).CreateServiceWithContext(t.Context(), pagerduty.Service{
			Name:                    "nil-timeout",
			EscalationPolicy:        pagerduty.EscalationPolicy{APIObject: pagerduty.APIObject{ID: "PACME01"}},
			AlertGroupingParameters: &pagerduty.AlertGroupingParameters{Type: "time", Config: &pagerduty.AlertGroupParamsConfig{}},
		})
		assert.EqualError(t, err, "HTTP response failed with status code 400, message: Invalid Input Provided (code: 2001): Config is invalid.")
	})

	t.Run("failed creates leave nothing behind", func(t *testing.T) {
		for _, s := range sim.Services("acme") {
			assert.NotEqual(t, "nil-timeout", s.Name)
		}
	})

	t.Run("update turns grouping off", func(t *testing.T) {
		svc := createService(t, pdClient(srv, acme), "to-turn-off")
		resp, b := call(t, srv, http.MethodPut, "/services/"+svc.ID, acme, `{"service":{"alert_grouping_parameters":{"type":"time","config":{"timeout":10}}}}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		resp, b = call(t, srv, http.MethodPut, "/services/"+svc.ID, acme, `{"service":{"alert_grouping_parameters":{"type":null}}}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		assert.Contains(t, string(b), `"alert_grouping_parameters":{"type":null}`)
	})
}

func TestAlertGroupingNeedsAbilities(t *testing.T) {
	_, srv := newSim(t, pdsim.Options{})
	c := pdClient(srv, globex)
	ep := pagerduty.EscalationPolicy{APIObject: pagerduty.APIObject{ID: "PGLBX01", Type: "escalation_policy_reference"}}

	_, err := c.CreateServiceWithContext(t.Context(), pagerduty.Service{
		Name: "web", EscalationPolicy: ep, AlertGroupingParameters: &pagerduty.AlertGroupingParameters{Type: "intelligent"},
	})
	e := apiError(t, err)
	assert.Equal(t, http.StatusPaymentRequired, e.StatusCode)
	assert.Equal(t, 2014, e.APIError.ErrorObject.Code)
	assert.Equal(t, "Account does not have the abilities to perform the action. Please review the response for the required abilities.", e.APIError.ErrorObject.Message)

	svc, err := c.CreateServiceWithContext(t.Context(), pagerduty.Service{Name: "web", EscalationPolicy: ep})
	require.NoError(t, err, "without grouping the same service is created")
	assert.Equal(t, "https://globex.eu.pagerduty.com/service-directory/"+svc.ID, svc.HTMLURL)

	resp, b := call(t, srv, http.MethodPut, "/services/"+svc.ID, globex, `{"service":{"alert_grouping_parameters":{"type":"time","config":{"timeout":5}}}}`)
	assert.Equal(t, http.StatusPaymentRequired, resp.StatusCode, string(b))
	resp, b = call(t, srv, http.MethodPut, "/services/"+svc.ID, globex, `{"service":{"alert_grouping_parameters":{"type":null}}}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode, string(b))
}

// setting is an alert grouping setting as the API renders it.
type setting struct {
	ID       string                      `json:"id"`
	Name     *string                     `json:"name"`
	Type     string                      `json:"type"`
	Config   map[string]any              `json:"config"`
	Services []struct{ ID, Name string } `json:"services"`
}

func settingBody(typ, config string, serviceIDs ...string) string {
	refs := make([]string, 0, len(serviceIDs))
	for _, id := range serviceIDs {
		refs = append(refs, fmt.Sprintf(`{"id":%q,"type":"service_reference"}`, id))
	}
	return fmt.Sprintf(`{"alert_grouping_setting":{"name":"g","type":%q,"config":%s,"services":[%s]}}`, typ, config, strings.Join(refs, ","))
}

func TestAlertGroupingSettings(t *testing.T) {
	sim, srv := newSim(t, pdsim.Options{})
	c := pdClient(srv, acme)
	var ids []string
	for i := range 6 {
		ids = append(ids, createService(t, c, fmt.Sprintf("svc-%d", i)).ID)
	}
	post := func(t *testing.T, body string) (int, setting, errorBody) {
		t.Helper()
		resp, b := call(t, srv, http.MethodPost, "/alert_grouping_settings", acme, body)
		var out struct {
			Setting setting `json:"alert_grouping_setting"`
		}
		var e errorBody
		if resp.StatusCode == http.StatusCreated {
			require.NoError(t, json.Unmarshal(b, &out))
		} else {
			e = decodeError(t, b)
		}
		return resp.StatusCode, out.Setting, e
	}

	timeSetting := func() setting {
		status, gs, e := post(t, settingBody("time", `{"timeout":300}`, ids[0]))
		require.Equal(t, http.StatusCreated, status, e)
		return gs
	}()

	t.Run("created time setting", func(t *testing.T) {
		assert.Regexp(t, objectID, timeSetting.ID)
		assert.Equal(t, float64(300), timeSetting.Config["timeout"])
		require.Len(t, timeSetting.Services, 1)
		assert.Equal(t, "svc-0", timeSetting.Services[0].Name)

		svc, err := c.GetServiceWithContext(t.Context(), ids[0], nil)
		require.NoError(t, err)
		require.NotNil(t, svc.AlertGroupingParameters)
		assert.Equal(t, "time", svc.AlertGroupingParameters.Type)
		assert.Equal(t, uint(5), *svc.AlertGroupingParameters.Config.Timeout, "seconds shown as minutes on the service")
		assert.Equal(t, timeSetting.ID, sim.Services("acme")[0].AlertGroupingSettingID)
	})

	tests := []struct {
		name       string
		body       string
		wantErrors []string
	}{
		{"timeout too short", settingBody("time", `{"timeout":30}`, ids[1]), []string{"timeout: must be an integer between 60 and 86400 seconds."}},
		{"timeout too long", settingBody("time", `{"timeout":86401}`, ids[1]), []string{"timeout: must be an integer between 60 and 86400 seconds."}},
		{"timeout zero", settingBody("time", `{"timeout":0}`, ids[1]), []string{"timeout: must be an integer between 60 and 86400 seconds."}},
		{"time takes one service", settingBody("time", `{"timeout":60}`, ids[1], ids[2]), []string{"services: a time setting allows only one service."}},
		{"intelligent window", settingBody("intelligent", `{"time_window":200}`, ids[1]), []string{"time_window: must be an integer between 300 and 3600 seconds."}},
		{"content_based_intelligent takes one service", settingBody("content_based_intelligent", `{"aggregate":"all","fields":["summary"],"time_window":300}`, ids[1], ids[2]), []string{"services: a content_based_intelligent setting allows only one service."}},
		{"content based needs aggregate and fields", settingBody("content_based", `{}`, ids[1]), []string{"aggregate: must be one of all, any.", "fields: must be a non-empty list of strings."}},
		{"unknown config field", settingBody("time", `{"timeout":60,"time_window":300}`, ids[1]), []string{`config: unknown field "time_window" for type time.`}},
		{"unknown type", settingBody("fancy", `{}`, ids[1]), []string{"type: must be one of content_based, content_based_intelligent, intelligent, time."}},
		{"no services", settingBody("intelligent", `{}`), []string{"services: must contain at least one service."}},
		{"unknown service", settingBody("intelligent", `{}`, "PNOSUCH"), []string{"services: service PNOSUCH not found."}},
		{"service already in a setting", settingBody("intelligent", `{}`, ids[0]), []string{fmt.Sprintf("services: service %s already belongs to alert grouping setting %s.", ids[0], timeSetting.ID)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, e := post(t, tt.body)
			assert.Equal(t, http.StatusBadRequest, status)
			assert.Equal(t, 2001, e.Error.Code)
			assert.Equal(t, tt.wantErrors, e.Error.Errors)
		})
	}
	assert.Len(t, sim.AlertGroupingSettings("acme"), 1, "refused creates create nothing")

	var global setting
	t.Run("content based over several services", func(t *testing.T) {
		status, gs, e := post(t, settingBody("content_based", `{"aggregate":"all","fields":["source","summary"],"time_window":600}`, ids[1], ids[2], ids[3]))
		require.Equal(t, http.StatusCreated, status, e)
		global = gs
		svc, err := c.GetServiceWithContext(t.Context(), ids[1], nil)
		require.NoError(t, err)
		assert.Equal(t, "alert_grouping_setting_reference", svc.AlertGroupingParameters.Type, "multi-service settings show as a reference")
	})

	t.Run("get, update, list by service", func(t *testing.T) {
		resp, b := call(t, srv, http.MethodGet, "/alert_grouping_settings/"+global.ID, acme, "")
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))

		resp, b = call(t, srv, http.MethodPut, "/alert_grouping_settings/"+global.ID, acme, `{"alert_grouping_setting":{"name":"renamed"}}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		var out struct {
			Setting setting `json:"alert_grouping_setting"`
		}
		require.NoError(t, json.Unmarshal(b, &out))
		assert.Equal(t, "renamed", *out.Setting.Name)
		assert.Len(t, out.Setting.Services, 3, "services kept when omitted")

		resp, b = call(t, srv, http.MethodPut, "/alert_grouping_settings/"+global.ID, acme, settingBody("content_based", `{"aggregate":"any","fields":["source"]}`, ids[1], ids[2]))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		assert.Empty(t, sim.Services("acme")[3].AlertGroupingSettingID, "dropped service is free again")

		resp, b = call(t, srv, http.MethodGet, "/alert_grouping_settings?service_ids%5B%5D="+ids[2], acme, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var list struct {
			Settings []setting `json:"alert_grouping_settings"`
		}
		require.NoError(t, json.Unmarshal(b, &list))
		require.Len(t, list.Settings, 1)
		assert.Equal(t, global.ID, list.Settings[0].ID)

		resp, b = call(t, srv, http.MethodGet, "/alert_grouping_settings?service_ids%5B%5D="+ids[5], acme, "")
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.JSONEq(t, `{"alert_grouping_settings":[],"after":null,"before":null,"limit":25,"total":null}`, string(b))

		resp, _ = call(t, srv, http.MethodGet, "/alert_grouping_settings/PNOSUCH", acme, "")
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	})

	t.Run("service parameters take a service out of its setting", func(t *testing.T) {
		resp, b := call(t, srv, http.MethodPut, "/services/"+ids[2], acme, `{"service":{"alert_grouping_parameters":{"type":"intelligent"}}}`)
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		settings := sim.AlertGroupingSettings("acme")
		require.Len(t, settings, 2)
		assert.Equal(t, []string{ids[1]}, settings[1].ServiceIDs)
	})

	t.Run("deleting services shrinks and then removes settings", func(t *testing.T) {
		require.NoError(t, c.DeleteServiceWithContext(t.Context(), ids[1]))
		assert.Len(t, sim.AlertGroupingSettings("acme"), 1)
		resp, _ := call(t, srv, http.MethodGet, "/alert_grouping_settings/"+global.ID, acme, "")
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	})

	t.Run("delete frees the service", func(t *testing.T) {
		resp, _ := call(t, srv, http.MethodDelete, "/alert_grouping_settings/"+timeSetting.ID, acme, "")
		assert.Equal(t, http.StatusNoContent, resp.StatusCode)
		assert.Empty(t, sim.AlertGroupingSettings("acme"))
		status, _, e := post(t, settingBody("intelligent", `{"time_window":600,"iag_fields":["summary","source"]}`, ids[0]))
		assert.Equal(t, http.StatusCreated, status, e)
	})
}

func TestAlertGroupingSettingsLimits(t *testing.T) {
	seed := pdsim.AccountSeed{
		ID: "big", Tokens: []string{"big-token"}, AlertGroupingSettingsAPI: true,
		EscalationPolicies: []pdsim.EscalationPolicySeed{{ID: "PBIGEP1", Name: "Big"}},
	}
	var ids []string
	for i := range 251 {
		id := fmt.Sprintf("PB%05d", i)
		ids = append(ids, id)
		seed.Services = append(seed.Services, pdsim.ServiceSeed{ID: id, Name: fmt.Sprintf("big-%03d", i), EscalationPolicyID: "PBIGEP1"})
	}
	sim := pdsim.New(pdsim.Options{})
	require.NoError(t, sim.AddAccount(seed))
	srv := newServer(t, sim)

	resp, b := call(t, srv, http.MethodPost, "/alert_grouping_settings", "big-token", settingBody("content_based", `{"aggregate":"all","fields":["source"]}`, ids...))
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Equal(t, []string{"services: a setting allows at most 250 services."}, decodeError(t, b).Error.Errors)

	resp, b = call(t, srv, http.MethodPost, "/alert_grouping_settings", "big-token", settingBody("content_based", `{"aggregate":"all","fields":["source"]}`, ids[:250]...))
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))

	t.Run("cursor pagination", func(t *testing.T) {
		for _, id := range ids[250:] {
			resp, b := call(t, srv, http.MethodPost, "/alert_grouping_settings", "big-token", settingBody("time", `{"timeout":120}`, id))
			require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))
		}
		// Free 4 services from the big setting for 4 more single-service settings.
		settings := sim.AlertGroupingSettings("big")
		require.Len(t, settings, 2)
		resp, b := call(t, srv, http.MethodPut, "/alert_grouping_settings/"+settings[0].ID, "big-token", settingBody("content_based", `{"aggregate":"all","fields":["source"]}`, ids[4:250]...))
		require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
		for _, id := range ids[:4] {
			resp, b := call(t, srv, http.MethodPost, "/alert_grouping_settings", "big-token", settingBody("intelligent", `{}`, id))
			require.Equal(t, http.StatusCreated, resp.StatusCode, string(b))
		}

		type page struct {
			Settings []setting `json:"alert_grouping_settings"`
			After    *string   `json:"after"`
			Before   *string   `json:"before"`
			Total    *int      `json:"total"`
		}
		get := func(query string) page {
			resp, b := call(t, srv, http.MethodGet, "/alert_grouping_settings?limit=2&total=true"+query, "big-token", "")
			require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
			var p page
			require.NoError(t, json.Unmarshal(b, &p))
			return p
		}
		var seen []string
		p := get("")
		assert.Nil(t, p.Before)
		assert.Equal(t, 6, *p.Total)
		for {
			for _, s := range p.Settings {
				seen = append(seen, s.ID)
			}
			if p.After == nil {
				break
			}
			p = get("&after=" + *p.After)
		}
		want := make([]string, 0, 6)
		for _, s := range sim.AlertGroupingSettings("big") {
			want = append(want, s.ID)
		}
		assert.Equal(t, want, seen)
		require.NotNil(t, p.Before)
		back := get("&before=" + *p.Before)
		assert.Equal(t, want[2:4], []string{back.Settings[0].ID, back.Settings[1].ID})

		resp, _ = call(t, srv, http.MethodGet, "/alert_grouping_settings?after=bogus", "big-token", "")
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
}

func TestAlertGroupingSettingsEntitlementAndQuirk(t *testing.T) {
	sim, srv := newSim(t, pdsim.Options{})
	require.NoError(t, sim.AddAccount(pdsim.AccountSeed{
		ID: "quirky", Tokens: []string{"quirky-token"}, AlertGroupingSettingsAPI: true, EmptySettingsList404: true,
	}))

	routes := []struct{ method, path, body string }{
		{http.MethodGet, "/alert_grouping_settings", ""},
		{http.MethodPost, "/alert_grouping_settings", settingBody("intelligent", `{}`, "PXXXXXX")},
		{http.MethodGet, "/alert_grouping_settings/PXXXXXX", ""},
		{http.MethodPut, "/alert_grouping_settings/PXXXXXX", `{"alert_grouping_setting":{}}`},
		{http.MethodDelete, "/alert_grouping_settings/PXXXXXX", ""},
	}
	for _, rt := range routes {
		t.Run("globex "+rt.method+" "+rt.path, func(t *testing.T) {
			resp, b := call(t, srv, rt.method, rt.path, globex, rt.body)
			assert.Equal(t, http.StatusPaymentRequired, resp.StatusCode)
			assert.Equal(t, 2014, decodeError(t, b).Error.Code)
		})
	}

	t.Run("empty filtered list answers 404 without a body", func(t *testing.T) {
		resp, b := call(t, srv, http.MethodGet, "/alert_grouping_settings?service_ids%5B%5D=PXXXXXX", "quirky-token", "")
		assert.Equal(t, http.StatusNotFound, resp.StatusCode)
		assert.Empty(t, b)
		assert.False(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"))

		resp, _ = call(t, srv, http.MethodGet, "/alert_grouping_settings", "quirky-token", "")
		assert.Equal(t, http.StatusOK, resp.StatusCode, "unfiltered lists are never 404")
	})
}
