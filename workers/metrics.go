package workers

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes counted by pdworker_messages_total.
const (
	outcomeAcked        = "acked"
	outcomeRetried      = "retried"
	outcomeDeadLettered = "dead_lettered"
	// outcomeInterrupted counts messages handed back because the process shut down.
	outcomeInterrupted = "interrupted"
)

// Metrics are the consumer metrics, shared by every Consumer of a process. A nil
// *Metrics records nothing.
type Metrics struct {
	messages     *prometheus.CounterVec
	redeliveries *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	pending      *prometheus.GaugeVec
	actions      *prometheus.CounterVec
}

// NewMetrics creates the consumer metrics and registers them with reg (nil: not
// registered). Call it once per process; collectors that reg already holds are reused.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdworker_messages_total",
			Help: "Messages handled by JetStream consumers, by outcome (acked, retried, dead_lettered, interrupted).",
		}, []string{"consumer", "outcome"}),
		redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdworker_redeliveries_total",
			Help: "Messages received again after an earlier delivery failed, timed out or was interrupted.",
		}, []string{"consumer"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdworker_dead_letters_total",
			Help: "Messages dead-lettered, by why (permanent, panic, max_deliveries, interrupted_last_delivery).",
		}, []string{"consumer", "reason_class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "pdworker_handler_duration_seconds",
			Help:    "Time spent in message handlers, whatever their outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"consumer"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "pdworker_consumer_pending",
			Help: "Messages in the stream not yet delivered to the consumer (consumer lag), sampled periodically.",
		}, []string{"consumer"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pdworker_action_results_total",
			Help: "Finished scaffolder action jobs, by action, status (succeeded, failed) and failure code.",
		}, []string{"action", "status", "code"}),
	}
	if reg != nil {
		m.messages = register(reg, m.messages)
		m.redeliveries = register(reg, m.redeliveries)
		m.deadLetters = register(reg, m.deadLetters)
		m.duration = register(reg, m.duration)
		m.pending = register(reg, m.pending)
		m.actions = register(reg, m.actions)
	}
	return m
}

// register registers c, or returns the equal collector reg already has.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	if err != nil {
		panic(err)
	}
	return c
}

func (m *Metrics) outcome(consumer, outcome string) {
	if m == nil {
		return
	}
	m.messages.WithLabelValues(consumer, outcome).Inc()
}

func (m *Metrics) redelivered(consumer string) {
	if m == nil {
		return
	}
	m.redeliveries.WithLabelValues(consumer).Inc()
}

func (m *Metrics) deadLettered(consumer, reasonClass string) {
	if m == nil {
		return
	}
	m.messages.WithLabelValues(consumer, outcomeDeadLettered).Inc()
	m.deadLetters.WithLabelValues(consumer, reasonClass).Inc()
}

func (m *Metrics) handled(consumer string, d time.Duration) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(consumer).Observe(d.Seconds())
}

func (m *Metrics) setPending(consumer string, n uint64) {
	if m == nil {
		return
	}
	m.pending.WithLabelValues(consumer).Set(float64(n))
}

func (m *Metrics) actionResult(action, status, code string) {
	if m == nil {
		return
	}
	m.actions.WithLabelValues(action, status, code).Inc()
}
