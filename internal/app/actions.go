package app

import (
	"context"
	"fmt"

	"github.com/pdworker/pdworker/actions"
	"github.com/pdworker/pdworker/events"
	"github.com/pdworker/pdworker/workers"
)

// addActions registers the scaffolder actions and the consumer that runs their jobs
// (scaffolder.action.*), and returns what the action routes need.
func (a *App) addActions(ctx context.Context, d shared, tuning workers.ConsumerConfig) (*actions.Registry, *events.Jobs, error) {
	jobs, err := events.NewJobs(ctx, a.js)
	if err != nil {
		return nil, nil, fmt.Errorf("open job store: %w", err)
	}
	registry, err := actions.NewRegistry(
		actions.NewServiceCreate(d.accounts, jobs, actions.ServiceCreateConfig{ReadOnly: a.cfg.ReadOnly}, a.log),
	)
	if err != nil {
		return nil, nil, err
	}
	handler := workers.NewActionJobs(registry, d.validator, jobs, d.metrics, a.log)
	cc := tuning
	cc.Stream = events.StreamScaffolderJobs
	cc.Durable = "pdworker-actions"
	cc.FilterSubjects = []string{events.SubjectActionPrefix + ">"}
	cc.Concurrency = a.cfg.WorkerConcurrency
	cc.OnGiveUp = handler.GiveUp
	return registry, jobs, a.consume(d, cc, handler.Handle)
}
