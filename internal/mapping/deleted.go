package mapping

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/pdworker/pdworker/events"
)

// MarkServiceDeleted records on the explicit mapping of serviceID that PagerDuty
// deleted the service at at (ServiceDeletedAt), so that the mapping routes show it;
// the mapping itself is kept. It reports whether a mapping of that account was found.
// A mapping already marked keeps its first mark, so a repeated delivery changes
// nothing; a later Put of the mapping clears the mark.
func (s *Store) MarkServiceDeleted(ctx context.Context, account, serviceID string, at time.Time) (bool, error) {
	if serviceID == "" {
		return false, nil
	}
	key := serviceKeyPrefix + enc(serviceID)
	for range casAttempts {
		m, rev, err := s.getMapping(ctx, key)
		if err != nil {
			return false, err
		}
		if m == nil || !AccountsMatch(account, m.Account) {
			return false, nil
		}
		if m.ServiceDeletedAt != nil {
			return true, nil
		}
		deleted := at.UTC()
		m.ServiceDeletedAt = &deleted
		body, err := json.Marshal(m)
		if err != nil {
			return false, err
		}
		_, err = s.mappings.Update(ctx, key, body, rev)
		if events.IsKVConflict(err) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("mark service %s deleted on its mapping: %w", serviceID, err)
		}
		return true, nil
	}
	return false, fmt.Errorf("mark service %s deleted on its mapping: too many concurrent updates", serviceID)
}
