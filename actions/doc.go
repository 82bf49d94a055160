// Package actions owns the scaffolder actions this service runs: a registry keyed by
// action id, each action with its JSON Schemas and a pipeline of small steps whose
// progress is checkpointed, so a job that is run again — a retried HTTP call, a
// redelivered NATS message, a crash between two steps — resumes after its last
// finished step instead of repeating it.
//
// Actions know nothing about HTTP or NATS: they take a job id and an input and return
// an output or a classified error. They call PagerDuty through internal/pagerduty and
// keep checkpoints through the small StateStore interface (implemented by events.Jobs).
package actions
