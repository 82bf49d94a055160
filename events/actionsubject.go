package events

import "strings"

// ActionSubject returns the job subject of a scaffolder action: the action id with its
// colons turned into subject tokens, under SubjectActionPrefix
// ("pagerduty:service:create" → "scaffolder.action.pagerduty.service.create").
func ActionSubject(actionID string) string {
	return SubjectActionPrefix + strings.ReplaceAll(actionID, ":", ".")
}

// ActionFromSubject is the inverse of ActionSubject; false when subject is not an
// action job subject.
func ActionFromSubject(subject string) (string, bool) {
	rest, ok := strings.CutPrefix(subject, SubjectActionPrefix)
	if !ok || rest == "" {
		return "", false
	}
	return strings.ReplaceAll(rest, ".", ":"), true
}
