package pagerduty

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	gopd "github.com/PagerDuty/go-pagerduty"
)

// ErrUnknownAccount is returned (wrapped, with the account id) by Accounts.Client for an
// account id that is not configured.
var ErrUnknownAccount = errors.New("unknown pagerduty account")

// Class says what a caller should do about a failed PagerDuty call. The zero value means
// "not a PagerDuty API error" (nil, a context error, or an error from elsewhere).
type Class int

// The error classes. Each failed call gets exactly one, decided in this package.
const (
	// ClassRetryable: transport errors, 408, 429, 5xx and an exhausted client-side budget.
	// Retrying the same call later may succeed; APIError.Wait says how long to wait when
	// PagerDuty said so.
	ClassRetryable Class = iota + 1
	// ClassPermanent: the request itself is wrong or not allowed (400, 401, 403, 422, …).
	// Retrying the same request cannot succeed.
	ClassPermanent
	// ClassEntitlement: the account lacks an ability or plan feature (402, or code 2014
	// "Missing Account Ability").
	ClassEntitlement
	// ClassNotFound: the object does not exist (404, or code 2100 "Not Found").
	ClassNotFound
	// ClassConflict: the object already exists (409, or 400 "Name has already been taken").
	ClassConflict
)

// String returns the class name used in logs and metrics.
func (c Class) String() string {
	switch c {
	case ClassRetryable:
		return "retryable"
	case ClassPermanent:
		return "permanent"
	case ClassEntitlement:
		return "entitlement"
	case ClassNotFound:
		return "not_found"
	case ClassConflict:
		return "conflict"
	default:
		return "unclassified"
	}
}

// APIError is the one error type this package returns for a failed PagerDuty call. Its
// text names the operation and the account and never contains credentials or full URLs.
type APIError struct {
	// Op is what was attempted, e.g. "create service" or "get service PABC123".
	Op string
	// Account is the configured account id the call was made for.
	Account string
	// Status is the final HTTP status, 0 when no response arrived.
	Status int
	// Code is PagerDuty's error code from the body (e.g. 2001, 2014, 2100), 0 if absent.
	Code int
	// Message is PagerDuty's error message, or a description of the local failure.
	Message string
	// Errors are PagerDuty's error details (e.g. "Name has already been taken").
	Errors []string
	// Class is the classification; see the Class constants.
	Class Class
	// Wait is how long PagerDuty (ratelimit-reset) or the local budget asks to wait
	// before trying again; 0 when unknown.
	Wait time.Duration
	// Err is the underlying error, if any (a transport error, a decode error).
	Err error
}

// Error describes the failure, e.g. "pagerduty create service (account acme): 400
// Invalid Input Provided (code 2001): Name has already been taken".
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pagerduty %s (account %s): ", e.Op, e.Account)
	if e.Status > 0 {
		b.WriteString(strconv.Itoa(e.Status))
		msg := e.Message
		if msg == "" {
			msg = http.StatusText(e.Status)
		}
		if msg != "" {
			b.WriteString(" " + msg)
		}
		if e.Code != 0 {
			fmt.Fprintf(&b, " (code %d)", e.Code)
		}
		if len(e.Errors) > 0 {
			b.WriteString(": " + strings.Join(e.Errors, "; "))
		}
	} else {
		b.WriteString(e.Message)
	}
	if e.Wait > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.Wait)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *APIError) Unwrap() error { return e.Err }

// Temporary reports whether retrying later may succeed (Class == ClassRetryable).
func (e *APIError) Temporary() bool { return e.Class == ClassRetryable }

// RetryAfter returns how long to wait before retrying, from PagerDuty's ratelimit-reset
// header or the local budget; 0 if unknown.
func (e *APIError) RetryAfter() time.Duration { return e.Wait }

// ClassOf returns the class of err: 0 for nil, for errors that are not *APIError and
// for context cancellation or deadline (which are never retryable: they mean the caller
// gave up, not that PagerDuty failed).
func ClassOf(err error) Class {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return 0
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Class
	}
	return 0
}

// IsRetryable reports whether err is a PagerDuty failure worth retrying later.
func IsRetryable(err error) bool { return ClassOf(err) == ClassRetryable }

// IsCallTimeout reports whether err is a call that PagerDuty did not answer within the
// call timeout (Options.CallTimeout), as opposed to one whose caller gave up. Like every
// deadline it has no Class: whether to try again is the caller's decision.
func IsCallTimeout(err error) bool {
	var te *callTimeoutError
	return errors.As(err, &te)
}

// IsNotFound reports whether PagerDuty said the object does not exist.
func IsNotFound(err error) bool { return ClassOf(err) == ClassNotFound }

// IsConflict reports whether PagerDuty said the object already exists.
func IsConflict(err error) bool { return ClassOf(err) == ClassConflict }

// IsEntitlement reports whether the account lacks the ability or plan for the call.
func IsEntitlement(err error) bool { return ClassOf(err) == ClassEntitlement }

// IsNameTaken reports whether PagerDuty refused a create because the name is in use
// (400, code 2001, "Name has already been taken"; Class conflict).
func IsNameTaken(err error) bool {
	var ae *APIError
	if !errors.As(err, &ae) || ae.Class != ClassConflict {
		return false
	}
	return mentionsNameTaken(ae.Message, ae.Errors)
}

const nameTaken = "name has already been taken"

func mentionsNameTaken(msg string, details []string) bool {
	if strings.Contains(strings.ToLower(msg), nameTaken) {
		return true
	}
	for _, d := range details {
		if strings.Contains(strings.ToLower(d), nameTaken) {
			return true
		}
	}
	return false
}

// classifyStatus maps an HTTP status and PagerDuty error code to a Class. It is the only
// place where status codes are interpreted.
func classifyStatus(status, code int, msg string, details []string) Class {
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusRequestTimeout, status >= 500:
		return ClassRetryable
	case status == http.StatusPaymentRequired, code == 2014:
		return ClassEntitlement
	case status == http.StatusNotFound, code == 2100:
		return ClassNotFound
	case status == http.StatusConflict,
		status == http.StatusBadRequest && mentionsNameTaken(msg, details):
		return ClassConflict
	case status >= 200 && status < 300:
		return 0
	default:
		return ClassPermanent
	}
}

// errorBody parses PagerDuty's {"error":{"message","code","errors"}} body whatever the
// Content-Type says (go-pagerduty only parses application/json). ok is false when the
// body holds no error object.
func errorBody(body []byte) (obj gopd.APIErrorObject, ok bool) {
	var doc struct {
		Error gopd.NullAPIErrorObject `json:"error"`
	}
	if len(body) == 0 || json.Unmarshal(body, &doc) != nil || !doc.Error.Valid {
		return gopd.APIErrorObject{}, false
	}
	return doc.Error.ErrorObject, true
}

// resetWait reads PagerDuty's ratelimit-reset header (seconds until the window resets).
func resetWait(h http.Header) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("ratelimit-reset"))
	if v == "" {
		return 0, false
	}
	secs, err := strconv.ParseFloat(v, 64)
	if err != nil || secs < 0 || secs > 3600 {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}
