package actions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/schemas"
)

// ServiceCreateID is the id of the service-create action.
const ServiceCreateID = "pagerduty:service:create"

// Alert grouping values of the action's input and output.
const (
	GroupingNone                    = "none"
	GroupingTime                    = "time"
	GroupingIntelligent             = "intelligent"
	GroupingContentBased            = "content_based"
	GroupingContentBasedIntelligent = "content_based_intelligent"
)

// ServiceCreateConfig tunes the service-create action.
type ServiceCreateConfig struct {
	// ReadOnly refuses the action (READ_ONLY).
	ReadOnly bool
	// PolicyTTL is how long the owner of an escalation policy is remembered.
	PolicyTTL time.Duration
	// AbilitiesTTL is how long an account's abilities are remembered.
	AbilitiesTTL time.Duration
}

// ServiceCreate is the pagerduty:service:create action: it creates a PagerDuty service
// (or adopts an existing one with the same name and escalation policy), applies alert
// grouping with the best mechanism the account supports, and gives the service one
// Backstage integration.
type ServiceCreate struct {
	dir      *directory
	store    StateStore
	readOnly bool
	log      zerolog.Logger
}

// NewServiceCreate builds the action. store keeps its per-job checkpoints.
func NewServiceCreate(accounts *pagerduty.Accounts, store StateStore, cfg ServiceCreateConfig, log zerolog.Logger) *ServiceCreate {
	if cfg.PolicyTTL <= 0 {
		cfg.PolicyTTL = time.Hour
	}
	if cfg.AbilitiesTTL <= 0 {
		cfg.AbilitiesTTL = 10 * time.Minute
	}
	return &ServiceCreate{
		dir:      newDirectory(accounts, cfg.PolicyTTL, cfg.AbilitiesTTL),
		store:    store,
		readOnly: cfg.ReadOnly,
		log:      log.With().Str("action", ServiceCreateID).Logger(),
	}
}

// ID implements Action.
func (a *ServiceCreate) ID() string { return ServiceCreateID }

// Description implements Action.
func (a *ServiceCreate) Description() string {
	return "Creates a PagerDuty service with alert grouping and a Backstage integration (or adopts an existing one with the same name and escalation policy)."
}

// InputSchema implements Action.
func (a *ServiceCreate) InputSchema() string { return schemas.ServiceCreateInput }

// OutputSchema implements Action.
func (a *ServiceCreate) OutputSchema() string { return schemas.ServiceCreateOutput }

// ServiceCreateInput is the action's input, as a template writes it.
type ServiceCreateInput struct {
	Name               string `json:"name"`
	Description        string `json:"description"`
	EscalationPolicyID string `json:"escalationPolicyId"`
	AlertGrouping      string `json:"alertGrouping,omitempty"`
	Account            string `json:"account,omitempty"`
}

// ServiceCreateOutput is the action's output.
type ServiceCreateOutput struct {
	ServiceID      string   `json:"serviceId"`
	ServiceURL     string   `json:"serviceUrl"`
	IntegrationKey string   `json:"integrationKey"`
	Account        string   `json:"account"`
	AlertGrouping  string   `json:"alertGrouping"`
	Created        bool     `json:"created"`
	Warnings       []string `json:"warnings"`
}

// serviceCreateState is the job's checkpoint: everything a rerun needs to resume.
type serviceCreateState struct {
	Account string `json:"account,omitempty"`
	// FirstAttempt is when this job first asked PagerDuty to create the service, and
	// CreateAttempts how many runs have tried: on a rerun, a same-named service created
	// after FirstAttempt was created by this job.
	FirstAttempt   time.Time `json:"firstAttempt,omitzero"`
	CreateAttempts int       `json:"createAttempts,omitempty"`
	ServiceID      string    `json:"serviceId,omitempty"`
	ServiceURL     string    `json:"serviceUrl,omitempty"`
	Created        bool      `json:"created,omitempty"`
	Adopted        bool      `json:"adopted,omitempty"`
	Grouping       string    `json:"grouping,omitempty"`
	// GroupingAttempt and IntegrationAttempt count the runs that went on to those
	// writes: above 1, an earlier run may have done the write and lost the answer.
	GroupingAttempt    int      `json:"groupingAttempt,omitempty"`
	IntegrationAttempt int      `json:"integrationAttempt,omitempty"`
	IntegrationKey     string   `json:"integrationKey,omitempty"`
	Warnings           []string `json:"warnings,omitempty"`
}

// Run implements Action.
func (a *ServiceCreate) Run(ctx context.Context, jobID string, raw json.RawMessage) (json.RawMessage, error) {
	if a.readOnly {
		return nil, Fail(CodeReadOnly, nil, "pdworker runs with READ_ONLY=true: it creates nothing in PagerDuty")
	}
	var in ServiceCreateInput
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, Fail(CodeInvalidInput, err, "input is not a pagerduty:service:create input: %v", err)
	}
	if in.AlertGrouping == "" {
		in.AlertGrouping = GroupingNone
	}
	r := &serviceCreateRun{ServiceCreate: a, in: in, log: a.log.With().Str("job_id", jobID).Logger()}
	var st serviceCreateState
	err := runPipeline(ctx, a.store, jobID, &st, []step[serviceCreateState]{
		{"resolve account", r.resolveAccount},
		{"record create attempt", r.recordCreateAttempt},
		{"create service", r.createService},
		{"record grouping attempt", r.recordGroupingAttempt},
		{"apply alert grouping", r.applyGrouping},
		{"record integration attempt", r.recordIntegrationAttempt},
		{"create backstage integration", r.createIntegration},
	})
	if err != nil {
		return nil, err
	}
	out := ServiceCreateOutput{
		ServiceID:      st.ServiceID,
		ServiceURL:     st.ServiceURL,
		IntegrationKey: st.IntegrationKey,
		Account:        st.Account,
		AlertGrouping:  st.Grouping,
		Created:        st.Created,
		Warnings:       append([]string{}, st.Warnings...),
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode output: %w", err)
	}
	return b, nil
}

// serviceCreateRun is one execution of the action for one job.
type serviceCreateRun struct {
	*ServiceCreate
	in     ServiceCreateInput
	client *pagerduty.Client
	log    zerolog.Logger
}

// resolveAccount picks the account: the input's, else the escalation policy's owner.
// It also proves the escalation policy exists there, before anything is written.
func (r *serviceCreateRun) resolveAccount(ctx context.Context, st *serviceCreateState) error {
	account := st.Account
	if account == "" {
		account = r.in.Account
	}
	c, err := r.dir.policyAccount(ctx, r.in.EscalationPolicyID, account)
	if err != nil {
		return err
	}
	r.client = c
	st.Account = c.Account()
	return nil
}

func (r *serviceCreateRun) recordCreateAttempt(_ context.Context, st *serviceCreateState) error {
	if st.ServiceID != "" {
		return nil
	}
	if st.FirstAttempt.IsZero() {
		// Truncated so that it compares safely with PagerDuty's second-precision times.
		st.FirstAttempt = time.Now().UTC().Add(-time.Second).Truncate(time.Second)
	}
	st.CreateAttempts++
	return nil
}

func (r *serviceCreateRun) createService(ctx context.Context, st *serviceCreateState) error {
	if st.ServiceID != "" {
		return nil
	}
	svc, err := r.client.CreateService(ctx, pagerduty.Service{
		Name:             r.in.Name,
		Description:      r.in.Description,
		EscalationPolicy: policyRef(r.in.EscalationPolicyID),
		AlertCreation:    "create_alerts_and_incidents",
	})
	switch {
	case err == nil:
		st.ServiceID, st.ServiceURL, st.Created = svc.ID, svc.HTMLURL, true
		r.log.Info().Str("service_id", svc.ID).Str("account", st.Account).Msg("service created")
		return nil
	case pagerduty.IsNameTaken(err):
		return r.adopt(ctx, st)
	default:
		return pagerDutyFailure(err, "create service %q in account %s", r.in.Name, st.Account)
	}
}

// adopt takes over the existing service with the requested name when it has the
// requested escalation policy, and refuses otherwise.
func (r *serviceCreateRun) adopt(ctx context.Context, st *serviceCreateState) error {
	existing, err := r.client.FindServiceByName(ctx, r.in.Name)
	if err != nil {
		return fmt.Errorf("find existing service %q: %w", r.in.Name, err)
	}
	if existing == nil {
		// PagerDuty said the name is taken but does not list it yet: try again later.
		return fmt.Errorf("service %q is reported as existing but is not listed yet", r.in.Name)
	}
	if existing.EscalationPolicy.ID != r.in.EscalationPolicyID {
		return Fail(CodeConflict, nil,
			"a PagerDuty service named %q already exists in account %s with another escalation policy (%s): %s",
			r.in.Name, st.Account, existing.EscalationPolicy.ID, existing.HTMLURL)
	}
	st.ServiceID, st.ServiceURL = existing.ID, existing.HTMLURL
	if created, err := time.Parse(time.RFC3339, existing.CreateAt); err == nil && st.CreateAttempts > 1 && !created.Before(st.FirstAttempt) {
		// Created by an earlier run of this very job, which stopped before recording it.
		st.Created = true
		return nil
	}
	st.Adopted = true
	st.Warnings = append(st.Warnings, fmt.Sprintf("adopted the existing service %s (%s): it has the same name and escalation policy", existing.ID, existing.HTMLURL))
	r.log.Info().Str("service_id", existing.ID).Str("account", st.Account).Msg("existing service adopted")
	return nil
}

// recordGroupingAttempt counts the runs that go on to write alert grouping, so that a
// rerun knows an earlier one may have created a setting whose answer was lost.
func (r *serviceCreateRun) recordGroupingAttempt(_ context.Context, st *serviceCreateState) error {
	if st.Grouping == "" && r.in.AlertGrouping != GroupingNone {
		st.GroupingAttempt++
	}
	return nil
}

func (r *serviceCreateRun) recordIntegrationAttempt(_ context.Context, st *serviceCreateState) error {
	if st.IntegrationKey == "" {
		st.IntegrationAttempt++
	}
	return nil
}

// createIntegration gives the service its Backstage integration, reusing one that
// already exists (on an adopted service, or from an earlier run of this job).
func (r *serviceCreateRun) createIntegration(ctx context.Context, st *serviceCreateState) error {
	if st.IntegrationKey != "" {
		return nil
	}
	if st.Adopted || st.IntegrationAttempt > 1 {
		svc, err := r.client.GetService(ctx, st.ServiceID, "integrations")
		if err != nil {
			return pagerDutyFailure(err, "read service %s", st.ServiceID)
		}
		if key, ok := pagerduty.IntegrationKeyOf(svc, pagerduty.VendorBackstage); ok {
			st.IntegrationKey = key
			return nil
		}
	}
	in, err := r.client.CreateIntegration(ctx, st.ServiceID, pagerduty.Integration{
		Name:    "Backstage",
		Service: &pagerduty.APIObject{ID: st.ServiceID, Type: "service_reference"},
		Vendor:  &pagerduty.APIObject{ID: pagerduty.VendorBackstage, Type: "vendor_reference"},
	})
	if err != nil {
		return pagerDutyFailure(err, "create the Backstage integration on service %s", st.ServiceID)
	}
	if in.IntegrationKey == "" {
		return Fail(CodePagerDutyError, nil, "PagerDuty created integration %s on service %s without an integration key", in.ID, st.ServiceID)
	}
	st.IntegrationKey = in.IntegrationKey
	return nil
}

// retryable reports whether a failed PagerDuty call may succeed when the job runs
// again: PagerDuty said so (429, 5xx, a lost connection), or the call ran out of time
// or was interrupted, which says nothing about the request itself.
func retryable(err error) bool {
	return pagerduty.IsRetryable(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// pagerDutyFailure wraps the error of the PagerDuty call described by format: a
// retryable one stays retryable, the rest become permanent failures (a conflict keeps
// its own code).
func pagerDutyFailure(err error, format string, args ...any) error {
	if retryable(err) {
		return fmt.Errorf(format+": %w", append(args, err)...)
	}
	code := CodePagerDutyError
	if pagerduty.IsConflict(err) {
		code = CodeConflict
	}
	return Fail(code, err, "PagerDuty refused to "+format+": %v", append(args, err)...)
}

// policyRef is an escalation policy reference for a service body.
func policyRef(id string) pagerduty.EscalationPolicy {
	return pagerduty.EscalationPolicy{APIObject: pagerduty.APIObject{ID: id, Type: "escalation_policy_reference"}}
}
