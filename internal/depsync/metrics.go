package depsync

import "github.com/prometheus/client_golang/prometheus"

// metrics are the dependency sync's Prometheus series. A nil *metrics records
// nothing.
type metrics struct {
	runs  *prometheus.CounterVec
	edges *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdworker_depsync_runs_total",
			Help: "Dependency-sync runs by trigger (request, periodic, catalog, cli) and outcome (applied, dry_run, guarded, errors).",
		}, []string{"trigger", "outcome"}),
		edges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdworker_depsync_edges_total",
			Help: "PagerDuty service dependencies changed by dependency sync (op: added, removed, refused).",
		}, []string{"op"}),
	}
	reg.MustRegister(m.runs, m.edges)
	return m
}

// report counts one finished run.
func (m *metrics) report(rep *Report) {
	if m == nil {
		return
	}
	outcome := "applied"
	switch {
	case rep.Guard != nil:
		outcome = "guarded"
	case len(rep.Errors) > 0:
		outcome = "errors"
	case rep.DryRun:
		outcome = "dry_run"
	}
	m.runs.WithLabelValues(rep.Trigger, outcome).Inc()
	m.edges.WithLabelValues("added").Add(float64(len(rep.Added)))
	m.edges.WithLabelValues("removed").Add(float64(len(rep.Removed)))
	m.edges.WithLabelValues("refused").Add(float64(len(rep.Errors)))
}
