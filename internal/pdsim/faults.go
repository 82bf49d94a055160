package pdsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// FaultKind names what an injected fault does to a request.
type FaultKind string

// Fault kinds. Every kind except Fault5xxAfter and FaultLatency answers before the
// request is authenticated, rate-limited or allowed to change any state.
const (
	// Fault429 answers 429/2020 with ratelimit-* headers (remaining 0, reset
	// ResetSeconds).
	Fault429 FaultKind = "429"
	// Fault429Bare answers 429 with neither headers nor body, which PagerDuty documents
	// as possible.
	Fault429Bare FaultKind = "429_bare"
	// Fault5xx answers Status (default 500) with the 2000 internal-error body.
	Fault5xx FaultKind = "5xx"
	// Fault5xxAfter lets the request run — so a create really creates — and then answers
	// Status (default 502) with the 2000 body, as a gateway does when the upstream
	// finished but the answer was lost. Clients must be idempotent to survive it.
	Fault5xxAfter FaultKind = "5xx_after"
	// FaultLatency waits Latency (or until the client goes away) and then serves the
	// request normally.
	FaultLatency FaultKind = "latency"
	// FaultDrop closes the connection without any response.
	FaultDrop FaultKind = "drop"
)

var faultKinds = map[FaultKind]bool{
	Fault429: true, Fault429Bare: true, Fault5xx: true, Fault5xxAfter: true, FaultLatency: true, FaultDrop: true,
}

// Fault describes an injected failure. A request matches when Account (the account its
// credentials name), Method and the start of its path (PathPrefix) match; empty fields
// match anything. Of the matching requests, the fault applies to every Every-th (0 or 1:
// all of them), and of those with Probability (0: always) drawn from the seeded random
// source, at most Count times (0: unlimited). When several faults apply to one request,
// the earliest injected wins.
type Fault struct {
	Account      string        `json:"account,omitempty"`
	Method       string        `json:"method,omitempty"`
	PathPrefix   string        `json:"path_prefix,omitempty"`
	Kind         FaultKind     `json:"kind"`
	Status       int           `json:"status,omitempty"`
	Latency      time.Duration `json:"-"`
	Every        int           `json:"every,omitempty"`
	Probability  float64       `json:"probability,omitempty"`
	Count        int           `json:"count,omitempty"`
	ResetSeconds int           `json:"reset_seconds,omitempty"`
}

// faultJSON is Fault on the wire: latency is a Go duration string ("250ms").
type faultJSON struct {
	fault
	Latency string `json:"latency,omitempty"`
}

// fault has Fault's fields without its methods, so faultJSON can embed it without
// recursing into MarshalJSON.
type fault Fault

// MarshalJSON writes Latency as a duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	out := faultJSON{fault: fault(f)}
	if f.Latency > 0 {
		out.Latency = f.Latency.String()
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads Latency as a duration string such as "250ms" and refuses
// unknown fields.
func (f *Fault) UnmarshalJSON(b []byte) error {
	var in faultJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return err
	}
	*f = Fault(in.fault)
	if in.Latency != "" {
		d, err := time.ParseDuration(in.Latency)
		if err != nil {
			return fmt.Errorf("latency: %w", err)
		}
		f.Latency = d
	}
	return nil
}

// validate reports what is wrong with f, if anything.
func (f Fault) validate() error {
	switch {
	case !faultKinds[f.Kind]:
		return fmt.Errorf("kind %q is not one of 429, 429_bare, 5xx, 5xx_after, latency, drop", f.Kind)
	case f.Every < 0, f.Count < 0, f.ResetSeconds < 0, f.Latency < 0:
		return fmt.Errorf("every, count, reset_seconds and latency must not be negative")
	case f.Probability < 0 || f.Probability > 1:
		return fmt.Errorf("probability must be between 0 and 1")
	case f.Status != 0 && (f.Status < 500 || f.Status > 599) && (f.Kind == Fault5xx || f.Kind == Fault5xxAfter):
		return fmt.Errorf("status must be a 5xx code")
	}
	return nil
}

// status is the status code a 5xx fault answers with.
func (f Fault) status() int {
	switch {
	case f.Status != 0:
		return f.Status
	case f.Kind == Fault5xxAfter:
		return http.StatusBadGateway
	default:
		return http.StatusInternalServerError
	}
}

// InjectFault adds a fault and returns its ID (from 1), or 0 when the fault is invalid
// (unknown kind, negative numbers, probability outside [0,1], non-5xx status).
func (s *Sim) InjectFault(f Fault) int {
	if err := f.validate(); err != nil {
		s.log.Warn().Err(err).Msg("fault refused")
		return 0
	}
	return s.faults.add(f)
}

// ClearFaults removes every injected fault.
func (s *Sim) ClearFaults() { s.faults.clear() }

type faultState struct {
	id      int
	fault   Fault
	matched int
	applied int
}

type faultSet struct {
	mu     sync.Mutex
	rng    *rand.Rand
	nextID int
	list   []*faultState
}

func newFaultSet(seed int64) *faultSet {
	return &faultSet{rng: rand.New(rand.NewPCG(uint64(seed), 0xfa17))}
}

func (fs *faultSet) add(f Fault) int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.nextID++
	fs.list = append(fs.list, &faultState{id: fs.nextID, fault: f})
	return fs.nextID
}

func (fs *faultSet) remove(id int) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for i, st := range fs.list {
		if st.id == id {
			fs.list = append(fs.list[:i], fs.list[i+1:]...)
			return true
		}
	}
	return false
}

func (fs *faultSet) clear() {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.list = nil
}

// faultView is one fault as the control API lists it.
type faultView struct {
	ID      int   `json:"id"`
	Fault   Fault `json:"fault"`
	Matched int   `json:"matched"`
	Applied int   `json:"applied"`
}

func (fs *faultSet) snapshot() []faultView {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]faultView, 0, len(fs.list))
	for _, st := range fs.list {
		out = append(out, faultView{ID: st.id, Fault: st.fault, Matched: st.matched, Applied: st.applied})
	}
	return out
}

// pick returns the fault to apply to a request, if any, and counts it.
func (fs *faultSet) pick(account, method, path string) (Fault, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	for _, st := range fs.list {
		f := st.fault
		if f.Count > 0 && st.applied >= f.Count {
			continue
		}
		if (f.Account != "" && f.Account != account) ||
			(f.Method != "" && !strings.EqualFold(f.Method, method)) ||
			!strings.HasPrefix(path, f.PathPrefix) {
			continue
		}
		st.matched++
		if f.Every > 1 && st.matched%f.Every != 0 {
			continue
		}
		if f.Probability > 0 && fs.rng.Float64() >= f.Probability {
			continue
		}
		st.applied++
		return f, true
	}
	return Fault{}, false
}

// applyFault carries out f and reports whether the request should still be served
// (latency and 5xx_after faults) or is finished.
func (s *Sim) applyFault(rec *statusRecorder, raw http.ResponseWriter, r *http.Request, f Fault, acct *account) bool {
	switch f.Kind {
	case Fault429:
		limit := s.opts.RateLimit
		if acct != nil {
			limit = acct.limiter.limit
		}
		setRateLimitHeaders(rec.Header(), limit, 0, f.ResetSeconds)
		writeError(rec, http.StatusTooManyRequests, codeRateLimit, msgRateLimit)
		return false
	case Fault429Bare:
		rec.WriteHeader(http.StatusTooManyRequests)
		return false
	case Fault5xx:
		writeError(rec, f.status(), codeInternal, msgInternal)
		return false
	case FaultDrop:
		drop(raw)
		return false
	case FaultLatency:
		bufferBody(r)
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-r.Context().Done():
			return false
		}
	}
	return true
}

// drop closes the client connection without writing a response. Where the connection
// cannot be hijacked (HTTP/2), aborting the handler resets the stream instead.
func drop(w http.ResponseWriter) {
	if h, ok := w.(http.Hijacker); ok {
		if conn, _, err := h.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

// bufferBody reads the request body into memory. The server notices a client that went
// away only once the body has been read, so a waiting handler must read it first.
func bufferBody(r *http.Request) {
	b, err := io.ReadAll(r.Body)
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(b), errReader{err}))
}

// errReader returns err, or io.EOF when err is nil.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) {
	if e.err == nil {
		return 0, io.EOF
	}
	return 0, e.err
}
