package pagerduty

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"
	"github.com/rs/zerolog"

	"github.com/pdworker/pdworker/internal/secret"
)

// maxErrorBody bounds how much of an error response body is kept for classification.
const maxErrorBody = 64 << 10

// callState records, for one API call, what its last HTTP attempt produced. The layers
// below go-pagerduty write it (go-pagerduty flattens transport errors with %v and
// parses error bodies only when labelled application/json); Client.classify reads it.
// It travels in the request context under an unexported key.
type callState struct {
	mu     sync.Mutex
	status int         // final HTTP status of the last attempt, 0 if none
	header http.Header // its headers, for status >= 400
	body   []byte      // its body, for status >= 400 (bounded)
	err    error       // transport error, *budgetError or token error of the last attempt
	auth   bool        // err came from fetching the OAuth token
	// repeatable is false for a request that PagerDuty may have carried out even though
	// no answer came back, and that would then be done twice if sent again.
	repeatable bool
}

type callStateKey struct{}

func withCallState(ctx context.Context, st *callState) context.Context {
	return context.WithValue(ctx, callStateKey{}, st)
}

func callStateFrom(ctx context.Context) *callState {
	st, _ := ctx.Value(callStateKey{}).(*callState)
	return st
}

func (st *callState) setResponse(status int, h http.Header, body []byte) {
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.status, st.header, st.body, st.err, st.auth = status, h, body, nil, false
}

func (st *callState) setError(err error, auth bool) {
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.status, st.header, st.body, st.err, st.auth = 0, nil, nil, err, auth
}

func (st *callState) setRequest(req *http.Request, basePath string) {
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.repeatable = repeatable(req.Method, strings.TrimPrefix(req.URL.Path, basePath))
}

// mayRepeat reports whether the call's request may be sent again after an ambiguous
// failure (a 5xx or a connection lost after sending). Without a call state (token
// fetches) it may.
func (st *callState) mayRepeat() bool {
	if st == nil {
		return true
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.repeatable
}

// repeatable reports whether sending the request twice has the same effect as sending
// it once. GET, PUT and DELETE are; a POST creates something, except for the POSTs that
// only read or that PagerDuty applies idempotently.
func repeatable(method, path string) bool {
	if method != http.MethodPost {
		return true
	}
	for _, p := range []string{"/analytics/", "/service_dependencies/"} {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func (st *callState) snapshot() (status int, h http.Header, body []byte, err error, auth bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.status, st.header, st.body, st.err, st.auth
}

// attemptTransport is the innermost layer: every single HTTP attempt takes one unit of
// the account's budget, is measured, and its outcome is recorded for the classifier.
type attemptTransport struct {
	account  string
	basePath string
	budget   *budget
	metrics  *metrics
	next     http.RoundTripper
}

func (t *attemptTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	st := callStateFrom(ctx)
	if err := t.budget.take(ctx); err != nil {
		closeBody(req)
		st.setError(err, false)
		return nil, err
	}
	st.setRequest(req, t.basePath)
	route := routeOf(req.Method, req.URL.Path, t.basePath)
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	t.metrics.duration.WithLabelValues(t.account, route).Observe(time.Since(start).Seconds())
	if err != nil {
		t.metrics.requests.WithLabelValues(t.account, route, "error").Inc()
		st.setError(err, false)
		return nil, err
	}
	t.metrics.requests.WithLabelValues(t.account, route, strconv.Itoa(resp.StatusCode)).Inc()
	if st == nil {
		return resp, nil
	}
	// Only a failure's headers and body are read by the classifier.
	var header http.Header
	var body []byte
	if resp.StatusCode >= 400 {
		header = resp.Header.Clone()
		body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
	}
	st.setResponse(resp.StatusCode, header, body)
	return resp, nil
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// authTransport sets the Authorization header on every request (go-pagerduty's own
// header is overwritten, so the go-pagerduty client never holds a credential). With
// OAuth, a 401 drops the cached token, fetches a new one and re-sends the request once.
type authTransport struct {
	account string
	apiHost string       // scheme://host of the API URL; no other host gets credentials
	token   secret.Value // API token, or
	oauth   *tokenSource // scoped OAuth app
	metrics *metrics
	next    http.RoundTripper
}

func (t *authTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme+"://"+req.URL.Host != t.apiHost {
		r := req.Clone(req.Context())
		r.Header.Del("Authorization")
		return t.next.RoundTrip(r)
	}
	if t.oauth == nil {
		r := req.Clone(req.Context())
		r.Header.Set("Authorization", "Token token="+t.token.Reveal())
		return t.next.RoundTrip(r)
	}
	ctx := req.Context()
	tok, err := t.oauth.token(ctx)
	if err != nil {
		closeBody(req)
		callStateFrom(ctx).setError(err, true)
		return nil, err
	}
	r := req.Clone(ctx)
	r.Header.Set("Authorization", "Bearer "+tok)
	resp, err := t.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || (req.Body != nil && req.GetBody == nil) {
		return resp, err
	}
	// The token was rejected (expired early, revoked, rotated): fetch a fresh one and
	// try once more. A second 401 is final.
	drain(resp.Body)
	t.oauth.invalidate(tok)
	t.metrics.retries.WithLabelValues(t.account, retryUnauthorized).Inc()
	if tok, err = t.oauth.token(ctx); err != nil {
		callStateFrom(ctx).setError(err, true)
		return nil, err
	}
	r = req.Clone(ctx)
	if req.GetBody != nil {
		if r.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("rewind request body: %w", err)
		}
	}
	r.Header.Set("Authorization", "Bearer "+tok)
	return t.next.RoundTrip(r)
}

func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxErrorBody))
	_ = body.Close()
}

// retryPolicy is the go-retryablehttp CheckRetry and Backoff of one account.
//
// Retried in-process: transport errors (except unrecoverable ones such as TLS
// verification failures), 429 and 5xx — but a request that creates something (see
// repeatable) is retried after a 5xx or a lost connection only when it never reached
// PagerDuty, because PagerDuty may have done the work: that decision belongs to the
// caller, which can look for what exists first. Never: any other 4xx, an exhausted budget,
// anything once ctx is done. A 429 waits ratelimit-reset seconds (plus up to
// RetryWaitMin of jitter); a 429 without that header waits between RetryWaitMax/2 and
// RetryWaitMax. When PagerDuty asks for more than MaxRetryAfter, or the wait would not
// fit before the call's deadline, the 429 (or 5xx) is returned instead so the caller
// (the NATS layer) can delay the message rather than hold a worker.
type retryPolicy struct {
	account       string
	waitMin       time.Duration
	waitMax       time.Duration
	maxRetryAfter time.Duration
	metrics       *metrics
}

func (p *retryPolicy) check(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, nil
	}
	if err != nil {
		var be *budgetError
		if errors.As(err, &be) {
			return false, nil
		}
		if !callStateFrom(ctx).mayRepeat() && !notSent(err) {
			return false, nil
		}
		retry, _ := retryablehttp.DefaultRetryPolicy(ctx, nil, err)
		return retry, nil
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		wait, known := resetWait(resp.Header)
		upper := p.waitMax
		if known {
			if wait > p.maxRetryAfter {
				return false, nil
			}
			upper = wait + p.waitMin
		}
		return fitsDeadline(ctx, upper), nil
	case resp.StatusCode >= 500:
		// PagerDuty may have done the work before failing; a create is then left to
		// the caller, who can look for what exists before trying again.
		return callStateFrom(ctx).mayRepeat() && fitsDeadline(ctx, p.waitMax), nil
	}
	return false, nil
}

// notSent reports whether a transport error happened before the request could reach
// the server (the connection was never made), so that repeating it is always safe.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// fitsDeadline reports whether waiting d still leaves ctx's deadline ahead.
func fitsDeadline(ctx context.Context, d time.Duration) bool {
	dl, ok := ctx.Deadline()
	return !ok || time.Until(dl) > d
}

// backoff is called by go-retryablehttp only when a retry will follow, so it also
// counts retries.
func (p *retryPolicy) backoff(minWait, maxWait time.Duration, attempt int, resp *http.Response) time.Duration {
	switch {
	case resp == nil:
		p.metrics.retries.WithLabelValues(p.account, retryTransport).Inc()
	case resp.StatusCode == http.StatusTooManyRequests:
		p.metrics.retries.WithLabelValues(p.account, retryRateLimited).Inc()
		if wait, ok := resetWait(resp.Header); ok {
			return wait + jitter(minWait)
		}
		return maxWait/2 + jitter(maxWait/2)
	default:
		p.metrics.retries.WithLabelValues(p.account, retryServerError).Inc()
	}
	d := maxWait
	if attempt < 16 {
		d = min(maxWait, minWait<<attempt)
	}
	return d/2 + jitter(d/2)
}

func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// retryLogger adapts zerolog to go-retryablehttp's LeveledLogger. Everything goes out
// at debug level (the outcome is returned as an error and logged, once, by the caller);
// URLs lose their query and user info, and no header is ever logged.
type retryLogger struct{ log zerolog.Logger }

func (l retryLogger) Error(msg string, kv ...any) { l.emit(msg, kv) }
func (l retryLogger) Info(msg string, kv ...any)  { l.emit(msg, kv) }
func (l retryLogger) Debug(msg string, kv ...any) { l.emit(msg, kv) }
func (l retryLogger) Warn(msg string, kv ...any)  { l.emit(msg, kv) }

func (l retryLogger) emit(msg string, kv []any) {
	e := l.log.Debug()
	if e == nil {
		return
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			continue
		}
		switch v := kv[i+1].(type) {
		case string:
			e = e.Str(k, redactURLs(v))
		case error:
			e = e.Str(k, redactURLs(v.Error()))
		case time.Duration:
			e = e.Dur(k, v)
		case int:
			e = e.Int(k, v)
		default:
			e = e.Str(k, redactURLs(fmt.Sprint(v)))
		}
	}
	e.Msg(msg)
}

var urlPattern = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"']+`)

// redactURLs rewrites every URL in s to scheme://host/path, dropping user info, query
// and fragment.
func redactURLs(s string) string {
	return urlPattern.ReplaceAllStringFunc(s, func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			return "[url]"
		}
		u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
		return u.String()
	})
}
