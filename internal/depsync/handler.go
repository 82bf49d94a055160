package depsync

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/pdworker/pdworker/schemas"
	"github.com/pdworker/pdworker/workers"
)

// RunHandler returns the consumer handler for depsync.run: a bad body is dead-lettered
// at once; a run that fails on NATS or a cancelled context is retried. PagerDuty's
// refusals are part of the report, not failures of the message.
func (s *Syncer) RunHandler(v *schemas.Validator) workers.Handler {
	return func(ctx context.Context, m *workers.Message) error {
		if len(m.Data) == 0 {
			m.Data = []byte("{}")
		}
		if err := v.Validate(schemas.DepsyncRun, m.Data); err != nil {
			return workers.Permanent(err)
		}
		var req Request
		if err := json.Unmarshal(m.Data, &req); err != nil {
			return workers.Permanent(fmt.Errorf("decode depsync.run: %w", err))
		}
		_, err := s.Run(ctx, req, "request")
		return err
	}
}
