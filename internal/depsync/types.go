package depsync

import "time"

// Request asks for a reconcile (the body of depsync.run).
type Request struct {
	// DryRun computes and reports the plan without writing to PagerDuty.
	DryRun bool `json:"dryRun"`
	// Force applies a plan even when it trips the removal guard.
	Force bool `json:"force,omitempty"`
	// Refresh re-reads PagerDuty's side of every service in scope instead of using
	// observations younger than the interval.
	Refresh bool `json:"refresh,omitempty"`
	// EntityRefs limits the run to these entities; empty means a full reconcile.
	EntityRefs []string `json:"entityRefs,omitempty"`
}

// Edge is one dependency: Dependent depends on Supporting, in Account.
type Edge struct {
	Account    string `json:"account"`
	Dependent  string `json:"dependent"`
	Supporting string `json:"supporting"`
	// EntityRef and TargetRef are the catalog entities behind the services, when known.
	EntityRef string `json:"entityRef,omitempty"`
	TargetRef string `json:"targetRef,omitempty"`
}

// Skip is a catalog dependency that was not planned, and why.
type Skip struct {
	EntityRef string `json:"entityRef"`
	TargetRef string `json:"targetRef,omitempty"`
	Reason    string `json:"reason"`
}

// EdgeError is a planned write that PagerDuty refused or that could not be done.
type EdgeError struct {
	Edge    Edge   `json:"edge"`
	Op      string `json:"op"` // "add", "remove" or "read"
	Message string `json:"message"`
	Status  int    `json:"status,omitempty"`
	Code    int    `json:"code,omitempty"`
}

// Plan is what a run would write.
type Plan struct {
	Add    []Edge `json:"add"`
	Remove []Edge `json:"remove"`
	// PagerDutyOnly lists managed PagerDuty dependencies the catalog lacks that the
	// strategy keeps (both).
	PagerDutyOnly []Edge `json:"pagerdutyOnly"`
}

// Guard says why a run stopped before applying anything.
type Guard struct {
	Removals int     `json:"removals"`
	Existing int     `json:"existing"`
	Share    float64 `json:"share"`
	MaxShare float64 `json:"maxShare"`
	Message  string  `json:"message"`
}

// Report is the plan and outcome of one run (the body of depsync.report).
type Report struct {
	RunID      string    `json:"runId"`
	Trigger    string    `json:"trigger"` // "request", "periodic", "catalog", "cli"
	Strategy   string    `json:"strategy"`
	DryRun     bool      `json:"dryRun"`
	Full       bool      `json:"full"`
	Holder     string    `json:"holder,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	// Services is the number of mapped services in scope.
	Services int         `json:"services"`
	Plan     Plan        `json:"plan"`
	Added    []Edge      `json:"added"`
	Removed  []Edge      `json:"removed"`
	Skipped  []Skip      `json:"skipped"`
	Errors   []EdgeError `json:"errors"`
	Guard    *Guard      `json:"guard,omitempty"`
	// Message summarises the run in one line.
	Message string `json:"message"`
	// PagerDutyReads and PagerDutyWrites count the calls this run made (each call may
	// be retried inside the client).
	PagerDutyReads  int `json:"pagerdutyReads"`
	PagerDutyWrites int `json:"pagerdutyWrites"`
}
