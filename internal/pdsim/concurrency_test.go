package pdsim_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	pagerduty "github.com/PagerDuty/go-pagerduty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pdsim"
)

func TestConcurrentCreatesOfOneName(t *testing.T) {
	sim, srv := newSim(t, pdsim.Options{})
	c := pdClient(srv, acme)
	const n = 16
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = c.CreateServiceWithContext(t.Context(), pagerduty.Service{
				Name: "race", EscalationPolicy: pagerduty.EscalationPolicy{APIObject: pagerduty.APIObject{ID: "PACME01"}},
			})
		})
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		if err == nil {
			created++
			continue
		}
		assert.Contains(t, err.Error(), "Name has already been taken")
	}
	assert.Equal(t, 1, created)
	assert.Len(t, sim.Services("acme"), 1)
}

func TestConcurrentMixedTraffic(t *testing.T) {
	sim, srv := newSim(t, pdsim.Options{})
	sim.InjectFault(pdsim.Fault{Kind: pdsim.Fault5xx, Probability: 0.1, PathPrefix: "/abilities"})
	const workers, perWorker = 6, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			c := pdClient(srv, acme)
			for i := range perWorker {
				svc, err := c.CreateServiceWithContext(t.Context(), pagerduty.Service{
					Name: fmt.Sprintf("w%d-%d", w, i), EscalationPolicy: pagerduty.EscalationPolicy{APIObject: pagerduty.APIObject{ID: "PACME01"}},
				})
				if !assert.NoError(t, err) {
					return
				}
				_, err = c.CreateIntegrationWithContext(t.Context(), svc.ID, pagerduty.Integration{Vendor: &pagerduty.APIObject{ID: pdsim.VendorBackstage}})
				assert.NoError(t, err)
				status, err := postStatus(srv.URL+"/alert_grouping_settings", settingBody("time", `{"timeout":60}`, svc.ID))
				assert.NoError(t, err)
				assert.Equal(t, http.StatusCreated, status)
				_, err = c.ListServicesPaginated(t.Context(), pagerduty.ListServiceOptions{Query: fmt.Sprintf("w%d-", w)})
				assert.NoError(t, err)
				_, _ = c.ListAbilitiesWithContext(t.Context())
				_ = sim.Services("acme")
				_ = sim.Requests()
				if i%3 == 0 {
					assert.NoError(t, c.DeleteServiceWithContext(t.Context(), svc.ID))
				}
			}
		})
	}
	wg.Wait()

	deleted := workers * ((perWorker + 2) / 3)
	assert.Len(t, sim.Services("acme"), workers*perWorker-deleted)
	assert.Len(t, sim.AlertGroupingSettings("acme"), workers*perWorker-deleted)
	assert.Equal(t, workers*perWorker, sim.Count(http.MethodPost, "/services/"))
	assert.Zero(t, sim.RateLimited())
	for _, s := range sim.Services("acme") {
		require.Len(t, s.Integrations, 1)
		assert.NotEmpty(t, s.AlertGroupingSettingID)
	}
}

func TestConcurrentSettingsForOneService(t *testing.T) {
	sim, srv := newSim(t, pdsim.Options{})
	svc := createService(t, pdClient(srv, acme), "contested")
	const n = 8
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			statuses[i], err = postStatus(srv.URL+"/alert_grouping_settings", settingBody("intelligent", `{}`, svc.ID))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	created := 0
	for _, s := range statuses {
		if s == http.StatusCreated {
			created++
		} else {
			assert.Equal(t, http.StatusBadRequest, s)
		}
	}
	assert.Equal(t, 1, created)
	assert.Len(t, sim.AlertGroupingSettings("acme"), 1)
}

// postStatus posts body as acme and returns the status; safe in any goroutine.
func postStatus(url, body string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Token token="+acme)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, err
}
