package pagerduty_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/pagerduty"
)

// answer is what the test server replies to every attempt of one table row.
type answer struct {
	status      int
	contentType string // "" = application/json with a PagerDuty error body
	code        int
	message     string
	details     []string
	header      map[string]string
}

func (a answer) write(w http.ResponseWriter) {
	for k, v := range a.header {
		w.Header().Set(k, v)
	}
	switch {
	case a.status < 400 && a.status >= 200:
		writeJSON(w, a.status, map[string]any{"service": map[string]any{"id": "PSVC001", "name": "svc"}})
	case a.contentType == "none":
		w.WriteHeader(a.status)
	case a.contentType != "":
		w.Header().Set("Content-Type", a.contentType)
		w.WriteHeader(a.status)
		fmt.Fprintf(w, `{"error":{"message":%q,"code":%d,"errors":[%s]}}`, a.message, a.code, quoteJoin(a.details))
	default:
		writePDError(w, a.status, a.code, a.message, a.details...)
	}
}

func quoteJoin(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ",")
}

// TestEveryStatusThroughClassifier runs every HTTP status code a server can send as a
// final answer (plus PagerDuty's code-specific variants) through the real client and
// checks both decisions: retried in-process or not, and the class the caller sees.
func TestEveryStatusThroughClassifier(t *testing.T) {
	const none pagerduty.Class = 0
	const (
		retry    = pagerduty.ClassRetryable
		perm     = pagerduty.ClassPermanent
		entitled = pagerduty.ClassEntitlement
		notFound = pagerduty.ClassNotFound
		conflict = pagerduty.ClassConflict

		retryMax  = 2 // testOptions
		oneTry    = 1
		allTries  = retryMax + 1
		nameTaken = "Name has already been taken"
	)
	tests := []struct {
		name     string
		ans      answer
		class    pagerduty.Class
		attempts int
	}{
		{"200", answer{status: 200}, none, oneTry},
		{"201", answer{status: 201}, none, oneTry},
		{"300", answer{status: 300, message: "Multiple Choices"}, perm, oneTry},
		{"301 without Location", answer{status: 301}, perm, oneTry},
		{"304", answer{status: 304, contentType: "none"}, perm, oneTry},
		{"400", answer{status: 400, code: 2001, message: "Invalid Input Provided", details: []string{"Config is invalid."}}, perm, oneTry},
		{"400 name taken", answer{status: 400, code: 2001, message: "Invalid Input Provided", details: []string{nameTaken}}, conflict, oneTry},
		{"400 name taken, vendor content type", answer{status: 400, contentType: "application/vnd.pagerduty+json", code: 2001, message: "Invalid Input Provided", details: []string{nameTaken}}, conflict, oneTry},
		{"400 escalation policy taken", answer{status: 400, code: 2001, message: "Invalid Input Provided", details: []string{"Escalation Policy has already been taken"}}, perm, oneTry},
		{"400 code 2014", answer{status: 400, code: 2014, message: "Missing Account Ability"}, entitled, oneTry},
		{"401", answer{status: 401, code: 2006, message: "Authentication failed"}, perm, oneTry},
		{"401 without JSON", answer{status: 401, contentType: "text/html"}, perm, oneTry},
		{"402", answer{status: 402, code: 2014, message: "Missing Account Ability"}, entitled, oneTry},
		{"402 without body", answer{status: 402, contentType: "none"}, entitled, oneTry},
		{"403", answer{status: 403, code: 2010, message: "Access Denied"}, perm, oneTry},
		{"403 code 2100", answer{status: 403, code: 2100, message: "Not Found"}, notFound, oneTry},
		{"404", answer{status: 404, code: 2100, message: "Not Found"}, notFound, oneTry},
		{"404 without body", answer{status: 404, contentType: "none"}, notFound, oneTry},
		{"405", answer{status: 405}, perm, oneTry},
		{"406", answer{status: 406}, perm, oneTry},
		{"407", answer{status: 407}, perm, oneTry},
		{"408", answer{status: 408, code: 2016, message: "The request took too long to process"}, retry, oneTry},
		{"409", answer{status: 409, message: "Conflict"}, conflict, oneTry},
		{"410", answer{status: 410}, perm, oneTry},
		{"411", answer{status: 411}, perm, oneTry},
		{"412", answer{status: 412}, perm, oneTry},
		{"413", answer{status: 413}, perm, oneTry},
		{"414", answer{status: 414}, perm, oneTry},
		{"415", answer{status: 415}, perm, oneTry},
		{"416", answer{status: 416}, perm, oneTry},
		{"417", answer{status: 417}, perm, oneTry},
		{"418", answer{status: 418}, perm, oneTry},
		{"421", answer{status: 421}, perm, oneTry},
		{"422", answer{status: 422}, perm, oneTry},
		{"423", answer{status: 423}, perm, oneTry},
		{"424", answer{status: 424}, perm, oneTry},
		{"425", answer{status: 425}, perm, oneTry},
		{"426", answer{status: 426}, perm, oneTry},
		{"428", answer{status: 428}, perm, oneTry},
		{"429 bare", answer{status: 429, contentType: "none"}, retry, allTries},
		{"429 with reset 0", answer{status: 429, code: 2020, message: "Rate Limit Exceeded", header: map[string]string{"ratelimit-reset": "0"}}, retry, allTries},
		{"431", answer{status: 431}, perm, oneTry},
		{"451", answer{status: 451}, perm, oneTry},
		{"500", answer{status: 500, code: 2000, message: "An internal error has occurred."}, retry, allTries},
		{"500 without body", answer{status: 500, contentType: "none"}, retry, allTries},
		{"501", answer{status: 501}, retry, allTries},
		{"502", answer{status: 502, contentType: "text/html"}, retry, allTries},
		{"503", answer{status: 503}, retry, allTries},
		{"504", answer{status: 504}, retry, allTries},
		{"505", answer{status: 505}, retry, allTries},
		{"506", answer{status: 506}, retry, allTries},
		{"507", answer{status: 507}, retry, allTries},
		{"508", answer{status: 508}, retry, allTries},
		{"510", answer{status: 510}, retry, allTries},
		{"511", answer{status: 511}, retry, allTries},
	}

	var current atomic.Pointer[answer]
	var attempts atomic.Int32
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attempts.Add(1)
		current.Load().write(w)
	}))

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			current.Store(&tt.ans)
			attempts.Store(0)
			svc, err := f.client.GetService(context.Background(), "PSVC001")
			assert.Equal(t, tt.attempts, int(attempts.Load()), "attempts")
			assert.Equal(t, tt.class, pagerduty.ClassOf(err), "class of %v", err)
			if tt.class == none {
				require.NoError(t, err)
				assert.Equal(t, "PSVC001", svc.ID)
				return
			}
			var ae *pagerduty.APIError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tt.ans.status, ae.Status)
			assert.Equal(t, tt.class == retry, ae.Temporary())
			assert.Equal(t, tt.class == retry, pagerduty.IsRetryable(err))
			assert.Equal(t, tt.class == notFound, pagerduty.IsNotFound(err))
			assert.Equal(t, tt.class == conflict, pagerduty.IsConflict(err))
			assert.Equal(t, tt.class == conflict && tt.ans.status == 400, pagerduty.IsNameTaken(err))
			assert.Equal(t, tt.class == entitled, pagerduty.IsEntitlement(err))
			if tt.ans.code != 0 && tt.ans.contentType != "none" && tt.ans.contentType != "text/html" {
				assert.Equal(t, tt.ans.code, ae.Code, "code parsed whatever the content type")
			}
			assert.Contains(t, err.Error(), "pagerduty get service PSVC001 (account acme): "+fmt.Sprint(tt.ans.status))
		})
	}
}

func TestErrorText(t *testing.T) {
	f := newFixture(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writePDError(w, 400, 2001, "Invalid Input Provided", "Name has already been taken")
	}))
	_, err := f.client.CreateService(context.Background(), pagerduty.Service{Name: "checkout"})
	require.Error(t, err)
	assert.Equal(t, "pagerduty create service (account acme): 400 Invalid Input Provided (code 2001): Name has already been taken", err.Error())
	assert.True(t, pagerduty.IsNameTaken(err))
	assert.True(t, pagerduty.IsConflict(err))
}

func TestClassOfNonAPIErrors(t *testing.T) {
	assert.Equal(t, pagerduty.Class(0), pagerduty.ClassOf(nil))
	assert.Equal(t, pagerduty.Class(0), pagerduty.ClassOf(errors.New("other")))
	assert.Equal(t, pagerduty.Class(0), pagerduty.ClassOf(fmt.Errorf("x: %w", context.DeadlineExceeded)))
	assert.Equal(t, "retryable", pagerduty.ClassRetryable.String())
	assert.Equal(t, "not_found", pagerduty.ClassNotFound.String())
	ae := &pagerduty.APIError{Op: "list services", Account: "acme", Status: 429, Class: pagerduty.ClassRetryable, Wait: 20 * time.Second}
	assert.Equal(t, 20*time.Second, ae.RetryAfter())
	assert.Equal(t, "pagerduty list services (account acme): 429 Too Many Requests (retry after 20s)", ae.Error())
}
