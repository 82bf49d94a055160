package actions

import (
	"context"
	"errors"
	"fmt"

	"github.com/pdworker/pdworker/internal/pagerduty"
)

// Grouping content fields used for content-based grouping, as PagerDuty's own action
// sends them.
var contentFields = []string{"source", "summary"}

// applyGrouping applies the requested alert grouping with the best mechanism the
// account supports and records what was applied: the Alert Grouping Settings API, else
// the service's (deprecated) alert_grouping_parameters, else none — with a warning that
// says why. The service is never recreated and an entitlement answer is never a failure.
func (r *serviceCreateRun) applyGrouping(ctx context.Context, st *serviceCreateState) error {
	if st.Grouping != "" {
		return nil
	}
	want := r.in.AlertGrouping
	if want == GroupingNone {
		st.Grouping = GroupingNone
		return nil
	}
	allowed, err := r.dir.groupingAllowed(ctx, r.client)
	if err != nil {
		return pagerDutyFailure(err, "read the abilities of account %s", st.Account)
	}
	if !allowed {
		return r.noGrouping(st, fmt.Sprintf("account %s lacks the alert grouping abilities (preview_intelligent_alert_grouping, time_based_alert_grouping)", st.Account))
	}
	if st.Adopted || st.GroupingAttempt > 1 {
		// The service may have a setting already: it was adopted, or an earlier run of
		// this job created one and lost the answer. PagerDuty allows one per service.
		settings, err := r.client.ListAlertGroupingSettings(ctx, []string{st.ServiceID})
		switch {
		case err == nil && len(settings) > 0:
			s := settings[0]
			st.Grouping = s.Type
			if s.Type != want {
				st.Warnings = append(st.Warnings, fmt.Sprintf("alert grouping %q was not applied: the service already has %q alert grouping (setting %s), left unchanged", want, s.Type, s.ID))
			}
			return nil
		case err != nil && retryable(err):
			return fmt.Errorf("list alert grouping settings of service %s: %w", st.ServiceID, err)
		}
		// No setting, or the settings API is unavailable: apply as for a new service.
	}

	_, err = r.client.CreateAlertGroupingSetting(ctx, groupingSetting(want, st.ServiceID, r.in.Name))
	switch {
	case err == nil:
		st.Grouping = want
		return nil
	case !settingsUnavailable(err):
		return pagerDutyFailure(err, "apply %q alert grouping to service %s", want, st.ServiceID)
	}
	settingsErr := err

	params, ok := groupingParameters(want)
	if !ok {
		return r.noGrouping(st, fmt.Sprintf("%q grouping needs the Alert Grouping Settings API, which account %s cannot use (%v)", want, st.Account, settingsErr))
	}
	_, err = r.client.UpdateService(ctx, pagerduty.Service{
		APIObject:               pagerduty.APIObject{ID: st.ServiceID, Type: "service"},
		EscalationPolicy:        policyRef(r.in.EscalationPolicyID),
		AlertGroupingParameters: params,
	})
	switch {
	case err == nil:
		st.Grouping = want
		st.Warnings = append(st.Warnings, fmt.Sprintf("alert grouping applied through the service's alert_grouping_parameters: the Alert Grouping Settings API is not available to account %s (%v)", st.Account, settingsErr))
		return nil
	case pagerduty.IsEntitlement(err):
		return r.noGrouping(st, fmt.Sprintf("PagerDuty refused alert grouping for account %s (%v)", st.Account, err))
	default:
		return pagerDutyFailure(err, "set %q alert grouping parameters of service %s", want, st.ServiceID)
	}
}

func (r *serviceCreateRun) noGrouping(st *serviceCreateState, why string) error {
	st.Grouping = GroupingNone
	st.Warnings = append(st.Warnings, fmt.Sprintf("alert grouping %q was not applied: %s; the service has no alert grouping", r.in.AlertGrouping, why))
	r.log.Warn().Str("service_id", st.ServiceID).Str("reason", why).Msg("alert grouping not applied")
	return nil
}

// settingsUnavailable reports whether an Alert Grouping Settings API error means the
// account cannot use that API at all (so the next mechanism should be tried).
func settingsUnavailable(err error) bool {
	switch pagerduty.ClassOf(err) {
	case pagerduty.ClassEntitlement, pagerduty.ClassNotFound:
		return true
	}
	var apiErr *pagerduty.APIError
	return errors.As(err, &apiErr) && apiErr.Status == 403
}

// groupingSetting is the Alert Grouping Settings API body for one service. Windows and
// timeouts are left to PagerDuty's recommended values.
func groupingSetting(kind, serviceID, serviceName string) pagerduty.AlertGroupingSetting {
	s := pagerduty.AlertGroupingSetting{
		Name:     serviceName + " (" + kind + ")",
		Type:     kind,
		Services: []pagerduty.ServiceRef{{ID: serviceID}},
	}
	switch kind {
	case GroupingContentBased, GroupingContentBasedIntelligent:
		s.Config = pagerduty.AlertGroupingSettingConfig{Aggregate: "all", Fields: contentFields}
	case GroupingIntelligent:
		s.Config = pagerduty.AlertGroupingSettingConfig{IAGFields: []string{"summary"}}
	}
	return s
}

// groupingParameters is the service-level alert_grouping_parameters for kind; false
// when the service level cannot express it.
func groupingParameters(kind string) (*pagerduty.AlertGroupingParameters, bool) {
	untilResolved := uint(0)
	switch kind {
	case GroupingTime:
		return &pagerduty.AlertGroupingParameters{Type: "time", Config: &pagerduty.AlertGroupParamsConfig{Timeout: &untilResolved}}, true
	case GroupingIntelligent:
		return &pagerduty.AlertGroupingParameters{Type: "intelligent"}, true
	case GroupingContentBased:
		return &pagerduty.AlertGroupingParameters{Type: "content_based", Config: &pagerduty.AlertGroupParamsConfig{Aggregate: "all", Fields: contentFields}}, true
	}
	return nil, false
}
