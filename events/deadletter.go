package events

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers of a dead letter. The original message's own headers are kept, except the
// Nats-* ones that steer JetStream; its Nats-Msg-Id moves to HeaderDLQMsgID.
const (
	HeaderDLQReason     = "Pdworker-Dlq-Reason"
	HeaderDLQSubject    = "Pdworker-Dlq-Subject"
	HeaderDLQStream     = "Pdworker-Dlq-Stream"
	HeaderDLQConsumer   = "Pdworker-Dlq-Consumer"
	HeaderDLQDeliveries = "Pdworker-Dlq-Deliveries"
	HeaderDLQStreamSeq  = "Pdworker-Dlq-Stream-Seq"
	HeaderDLQTime       = "Pdworker-Dlq-Time"
	HeaderDLQMsgID      = "Pdworker-Dlq-Msg-Id"
)

// maxReasonLen bounds the reason header; the full error belongs in the logs.
const maxReasonLen = 1024

// DeadLetter is a message that a consumer gave up on, with why and where it came from.
type DeadLetter struct {
	// Subject, Header and Data are the original message.
	Subject string
	Header  nats.Header
	Data    []byte
	// Reason says why the consumer gave up, for example "gave up after 5 deliveries:
	// pagerduty create service (account acme): 503 …".
	Reason string
	// Stream and StreamSeq locate the original message; Consumer is the durable
	// consumer that gave up; Deliveries is how often it was delivered.
	Stream     string
	StreamSeq  uint64
	Consumer   string
	Deliveries uint64
	// Time is when the consumer gave up; zero means now.
	Time time.Time
}

// PublishDeadLetter stores d in the DEADLETTER stream on DeadLetterSubject(d.Subject),
// with the Pdworker-Dlq-* headers set. A repeated publish for the same stream
// sequence is de-duplicated within the stream's duplicate window, so a consumer may
// retry it safely.
func PublishDeadLetter(ctx context.Context, js jetstream.JetStream, d DeadLetter) error {
	if d.Time.IsZero() {
		d.Time = time.Now()
	}
	h := nats.Header{}
	for k, vs := range d.Header {
		if strings.HasPrefix(strings.ToLower(k), "nats-") {
			continue
		}
		h[k] = append([]string(nil), vs...)
	}
	if id := d.Header.Get(jetstream.MsgIDHeader); id != "" {
		h.Set(HeaderDLQMsgID, id)
	}
	h.Set(HeaderDLQReason, headerValue(d.Reason, maxReasonLen))
	h.Set(HeaderDLQSubject, d.Subject)
	h.Set(HeaderDLQStream, d.Stream)
	h.Set(HeaderDLQConsumer, d.Consumer)
	h.Set(HeaderDLQDeliveries, strconv.FormatUint(d.Deliveries, 10))
	h.Set(HeaderDLQStreamSeq, strconv.FormatUint(d.StreamSeq, 10))
	h.Set(HeaderDLQTime, d.Time.UTC().Format(time.RFC3339Nano))

	var opts []jetstream.PublishOpt
	if d.StreamSeq > 0 {
		opts = append(opts, jetstream.WithMsgID(fmt.Sprintf("dlq.%s.%d", d.Stream, d.StreamSeq)))
	}
	msg := &nats.Msg{Subject: DeadLetterSubject(d.Subject), Header: h, Data: d.Data}
	if _, err := js.PublishMsg(ctx, msg, opts...); err != nil {
		return fmt.Errorf("publish dead letter for %s (stream %s seq %d): %w", d.Subject, d.Stream, d.StreamSeq, err)
	}
	return nil
}

// ParseDeadLetter reads a message stored by PublishDeadLetter back into a DeadLetter.
// Header keeps the original headers; fields whose header is missing or malformed stay
// zero.
func ParseDeadLetter(subject string, header nats.Header, data []byte) DeadLetter {
	d := DeadLetter{
		Subject:  header.Get(HeaderDLQSubject),
		Data:     data,
		Reason:   header.Get(HeaderDLQReason),
		Stream:   header.Get(HeaderDLQStream),
		Consumer: header.Get(HeaderDLQConsumer),
		Header:   nats.Header{},
	}
	if d.Subject == "" {
		d.Subject = strings.TrimPrefix(subject, SubjectDeadLetterPrefix)
	}
	d.Deliveries, _ = strconv.ParseUint(header.Get(HeaderDLQDeliveries), 10, 64)
	d.StreamSeq, _ = strconv.ParseUint(header.Get(HeaderDLQStreamSeq), 10, 64)
	d.Time, _ = time.Parse(time.RFC3339Nano, header.Get(HeaderDLQTime))
	for k, vs := range header {
		switch {
		case k == HeaderDLQMsgID:
			d.Header[jetstream.MsgIDHeader] = append([]string(nil), vs...)
		case strings.HasPrefix(k, "Pdworker-Dlq-"), strings.HasPrefix(strings.ToLower(k), "nats-"):
		default:
			d.Header[k] = append([]string(nil), vs...)
		}
	}
	return d
}

// headerValue makes s safe as a header value: one line, at most limit bytes.
func headerValue(s string, limit int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > limit {
		s = strings.ToValidUTF8(s[:limit-len("…")], "") + "…"
	}
	return s
}
