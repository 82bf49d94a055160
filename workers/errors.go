package workers

import (
	"errors"
	"fmt"
	"time"
)

// Permanent marks err as a failure that no retry can fix (bad JSON, a schema
// violation, a PagerDuty 400): the message is dead-lettered at once. Permanent(nil)
// is nil. The mark survives further wrapping with %w.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Permanent() bool { return true }

// panicError is what a handler's panic turns into: permanent, with the panic text.
type panicError struct{ value any }

func (e *panicError) Error() string   { return fmt.Sprintf("panic: %v", e.value) }
func (e *panicError) Permanent() bool { return true }

// verdict is how a handler error is treated.
type verdict struct {
	permanent  bool
	retryAfter time.Duration
	class      string // reason_class of a dead letter
}

// classify reads the behaviour an error declares: Permanent() bool == true, or
// Temporary() bool == false, makes it permanent; RetryAfter() time.Duration is the
// least delay before the next attempt. Anything else is retryable.
func classify(err error) verdict {
	var v verdict
	var pe *panicError
	var perm interface{ Permanent() bool }
	var temp interface{ Temporary() bool }
	switch {
	case errors.As(err, &pe):
		v.permanent, v.class = true, reasonPanic
	case errors.As(err, &perm) && perm.Permanent():
		v.permanent, v.class = true, reasonPermanent
	case errors.As(err, &temp) && !temp.Temporary():
		v.permanent, v.class = true, reasonPermanent
	}
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		v.retryAfter = max(ra.RetryAfter(), 0)
	}
	return v
}

// reason_class values of pdworker_dead_letters_total.
const (
	reasonPermanent     = "permanent"
	reasonPanic         = "panic"
	reasonMaxDeliveries = "max_deliveries"
	reasonShutdown      = "interrupted_last_delivery"
)
