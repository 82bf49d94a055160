package pdsim

import (
	"strings"
	"sync"
	"time"
)

// maxRequestLog bounds the request log; the oldest tenth is dropped when it is full.
const maxRequestLog = 1_000_000

// Request is one entry of the request log.
type Request struct {
	Time time.Time `json:"time"`
	// Account is the account the credentials named, or "" when they named none.
	Account string `json:"account,omitempty"`
	Method  string `json:"method"`
	Path    string `json:"path"`
	// Query is the raw query string, as sent.
	Query string `json:"query,omitempty"`
	// Status is the status code answered; 0 means no response was sent (a dropped
	// connection, or a client that went away during injected latency).
	Status int `json:"status"`
	// Fault is the FaultKind applied to the request, or "".
	Fault string `json:"fault,omitempty"`
}

type requestLog struct {
	mu      sync.Mutex
	entries []Request
}

func (l *requestLog) add(r Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) >= maxRequestLog {
		l.entries = append(l.entries[:0], l.entries[maxRequestLog/10:]...)
	}
	l.entries = append(l.entries, r)
}

// filter returns the entries whose method equals method and whose path starts with
// pathPrefix; empty arguments match everything.
func (l *requestLog) filter(method, pathPrefix string) []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []Request{}
	for _, r := range l.entries {
		if matchRequest(r, method, pathPrefix) {
			out = append(out, r)
		}
	}
	return out
}

func (l *requestLog) count(method, pathPrefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.entries {
		if matchRequest(r, method, pathPrefix) {
			n++
		}
	}
	return n
}

func (l *requestLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = nil
}

func matchRequest(r Request, method, pathPrefix string) bool {
	return (method == "" || strings.EqualFold(r.Method, method)) && strings.HasPrefix(r.Path, pathPrefix)
}

// Requests returns a copy of the request log, oldest first. Control API calls
// (/_sim/…) are not logged.
func (s *Sim) Requests() []Request { return s.reqlog.filter("", "") }

// ResetRequests empties the request log.
func (s *Sim) ResetRequests() { s.reqlog.reset() }

// Count returns how many logged requests have the given method and a path starting
// with pathPrefix; "" matches any method or path.
func (s *Sim) Count(method, pathPrefix string) int { return s.reqlog.count(method, pathPrefix) }
