package workers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"

	"github.com/pdworker/pdworker/actions"
	"github.com/pdworker/pdworker/internal/pagerduty"
	"github.com/pdworker/pdworker/schemas"
)

type temporaryErr bool

func (e temporaryErr) Error() string   { return "temporary: " + fmt.Sprint(bool(e)) }
func (e temporaryErr) Temporary() bool { return bool(e) }

type waitErr time.Duration

func (e waitErr) Error() string             { return "429" }
func (e waitErr) Temporary() bool           { return true }
func (e waitErr) RetryAfter() time.Duration { return time.Duration(e) }

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want verdict
	}{
		{"plain error", errors.New("connection reset"), verdict{}},
		{"Permanent", Permanent(errors.New("bad json")), verdict{permanent: true, class: reasonPermanent}},
		{"wrapped Permanent", fmt.Errorf("step: %w", Permanent(errors.New("x"))), verdict{permanent: true, class: reasonPermanent}},
		{"Temporary false", temporaryErr(false), verdict{permanent: true, class: reasonPermanent}},
		{"Temporary true", temporaryErr(true), verdict{}},
		{"RetryAfter", fmt.Errorf("create: %w", waitErr(3*time.Second)), verdict{retryAfter: 3 * time.Second}},
		{"negative RetryAfter", waitErr(-time.Second), verdict{}},
		{"deadline exceeded is retried", fmt.Errorf("call: %w", context.DeadlineExceeded), verdict{}},
		{"panic", &panicError{value: "boom"}, verdict{permanent: true, class: reasonPanic}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, classify(tt.err))
		})
	}
	assert.NoError(t, Permanent(nil))
}

// TestJobErrorCodes checks the failure code a waiting caller gets (and so the HTTP
// status of the action call) for each kind of final failure.
func TestJobErrorCodes(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"action failure", fmt.Errorf("step: %w", actions.Fail(actions.CodeConflict, nil, "taken")), actions.CodeConflict},
		{"schema violation", Permanent(&schemas.Error{Message: "name is required"}), actions.CodeInvalidInput},
		{"undecodable job", Permanent(errors.New("decode job: unexpected end of JSON input")), actions.CodeInvalidInput},
		{"PagerDuty down", fmt.Errorf("gave up after 5 deliveries: %w", &pagerduty.APIError{Status: 503, Class: pagerduty.ClassRetryable}), actions.CodePagerDutyUnavailable},
		{"PagerDuty refused", &pagerduty.APIError{Status: 400, Class: pagerduty.ClassPermanent}, actions.CodePagerDutyError},
		{"handler panic", &panicError{value: "nil map"}, actions.CodeInternal},
		{"anything else", errors.New("interrupted by shutdown"), actions.CodeInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, jobError(tt.err).Code)
		})
	}
}

func TestBackoff(t *testing.T) {
	c := &Consumer{cfg: ConsumerConfig{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}}
	tests := []struct {
		n    uint64
		want time.Duration // before jitter
	}{
		{1, 100 * time.Millisecond},
		{2, 200 * time.Millisecond},
		{3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond},
		{5, time.Second},
		{64, time.Second},
		{1 << 40, time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			for range 50 {
				d := c.backoff(tt.n)
				assert.LessOrEqual(t, d, tt.want)
				assert.GreaterOrEqual(t, d, tt.want*4/5)
			}
		})
	}
}

func TestMetricsNilAndReuse(t *testing.T) {
	var m *Metrics
	m.outcome("c", outcomeAcked)
	m.redelivered("c")
	m.deadLettered("c", reasonPanic)
	m.handled("c", time.Second)
	m.setPending("c", 3)

	reg := prometheus.NewRegistry()
	a := NewMetrics(reg)
	b := NewMetrics(reg)
	a.outcome("c", outcomeAcked)
	b.outcome("c", outcomeAcked)
	assert.Same(t, a.messages, b.messages)
}

func TestErrorChangedLogsOncePerText(t *testing.T) {
	c := &Consumer{lastErr: map[uint64]string{}}
	assert.True(t, c.errorChanged(7, "503"))
	assert.False(t, c.errorChanged(7, "503"))
	assert.True(t, c.errorChanged(7, "429"))
	assert.True(t, c.errorChanged(8, "429"))
	c.forget(7)
	assert.True(t, c.errorChanged(7, "429"))
}
