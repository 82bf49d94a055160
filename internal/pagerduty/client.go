package pagerduty

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	gopd "github.com/PagerDuty/go-pagerduty"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"
)

// Type aliases for the go-pagerduty v1.8.0 types this package's API uses.
type (
	// Service is a PagerDuty service.
	Service = gopd.Service
	// Integration is a service integration (its IntegrationKey is the Events v2 routing key).
	Integration = gopd.Integration
	// EscalationPolicy is a PagerDuty escalation policy.
	EscalationPolicy = gopd.EscalationPolicy
	// APIObject holds the id, type, summary, self and html_url common to PagerDuty objects.
	APIObject = gopd.APIObject
	// AlertGroupingParameters is a service's (deprecated, still accepted) alert grouping.
	AlertGroupingParameters = gopd.AlertGroupingParameters
	// AlertGroupParamsConfig is the config of AlertGroupingParameters.
	AlertGroupParamsConfig = gopd.AlertGroupParamsConfig
)

// VendorBackstage is the PagerDuty vendor id of the Backstage integration.
const VendorBackstage = "PRO19CT"

// pageLimit is the page size of offset-paginated lists (PagerDuty's maximum).
const pageLimit = 100

// Client talks to one PagerDuty account. It is safe for concurrent use; every call has a
// deadline (Options.CallTimeout), is paced by the account's budget, retried in-process
// within the limits of Options, and fails with a classified *APIError or a context error.
type Client struct {
	account   string
	apiURL    string
	eventsURL string
	timeout   time.Duration
	pd        *gopd.Client
	http      *http.Client
	redact    func(string) string
	// budget paces every attempt of the account, retries and token fetches included.
	budget *budget
}

// newClient assembles the transport stack described in the package documentation.
func newClient(cfg AccountConfig, opts Options, m *metrics, log zerolog.Logger) *Client {
	basePath, apiHost := "", ""
	if u, err := url.Parse(cfg.APIURL); err == nil {
		basePath, apiHost = strings.TrimRight(u.Path, "/"), u.Scheme+"://"+u.Host
	}
	budget := newBudget(opts.RateLimit, opts.RateWindow, m.wait.WithLabelValues(cfg.ID))
	attempt := &attemptTransport{
		account:  cfg.ID,
		basePath: basePath,
		budget:   budget,
		metrics:  m,
		next:     opts.Transport,
	}
	policy := &retryPolicy{
		account:       cfg.ID,
		waitMin:       opts.RetryWaitMin,
		waitMax:       opts.RetryWaitMax,
		maxRetryAfter: opts.MaxRetryAfter,
		metrics:       m,
	}
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: attempt, CheckRedirect: noRedirects}
	rc.RetryMax = opts.RetryMax
	rc.RetryWaitMin = opts.RetryWaitMin
	rc.RetryWaitMax = opts.RetryWaitMax
	rc.CheckRetry = policy.check
	rc.Backoff = policy.backoff
	rc.ErrorHandler = retryablehttp.PassthroughErrorHandler
	rc.Logger = retryLogger{log: log}

	std := rc.StandardClient()
	std.CheckRedirect = noRedirects
	auth := &authTransport{account: cfg.ID, apiHost: apiHost, token: cfg.Token, metrics: m, next: std.Transport}
	secrets := []string{cfg.Token.Reveal()}
	if cfg.OAuth != nil {
		// Token fetches use the retrying, budgeted transport but no auth layer.
		tokenHTTP := &http.Client{Transport: std.Transport, Timeout: opts.CallTimeout, CheckRedirect: noRedirects}
		auth.oauth = newTokenSource(cfg.OAuth, cfg.OAuth.Region, tokenHTTP)
		secrets = append(secrets, cfg.OAuth.ClientSecret.Reveal())
	}
	std.Transport = auth

	pd := gopd.NewClient("", gopd.WithAPIEndpoint(cfg.APIURL), gopd.WithV2EventsAPIEndpoint(cfg.EventsURL))
	pd.HTTPClient = std

	return &Client{
		account:   cfg.ID,
		apiURL:    cfg.APIURL,
		eventsURL: cfg.EventsURL,
		timeout:   opts.CallTimeout,
		pd:        pd,
		http:      std,
		redact:    redactor(secrets, auth.oauth),
		budget:    budget,
	}
}

// noRedirects makes a client return 3xx answers as they are: PagerDuty does not
// redirect API calls, and following one could carry a credential to another host.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// redactor masks the account's credentials, should a server ever echo one back.
func redactor(secrets []string, ts *tokenSource) func(string) string {
	return func(s string) string {
		all := secrets
		if ts != nil {
			all = append(all[:len(all):len(all)], ts.current())
		}
		for _, v := range all {
			if len(v) >= 4 {
				s = strings.ReplaceAll(s, v, "[redacted]")
			}
		}
		return redactURLs(s)
	}
}

// Account returns the configured account id.
func (c *Client) Account() string { return c.account }

// EventsURL returns the account's Events API v2 base URL.
func (c *Client) EventsURL() string { return c.eventsURL }

// call runs fn under the call deadline with a fresh callState and classifies its error.
func call[T any](ctx context.Context, c *Client, op string, fn func(ctx context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, c.timeout, &callTimeoutError{timeout: c.timeout})
	defer cancel()
	st := &callState{}
	v, err := fn(withCallState(ctx, st))
	if err != nil {
		var zero T
		return zero, c.classify(ctx, op, st, err)
	}
	return v, nil
}

// callTimeoutError is the cause of a call that ran out of its own deadline
// (Options.CallTimeout) while the caller still waited: PagerDuty did not answer in time.
type callTimeoutError struct{ timeout time.Duration }

func (e *callTimeoutError) Error() string {
	return fmt.Sprintf("no answer within the call timeout of %s", e.timeout)
}

// Unwrap keeps errors.Is(err, context.DeadlineExceeded) true.
func (e *callTimeoutError) Unwrap() error { return context.DeadlineExceeded }

// statusError is what the package's own REST helper returns for a non-2xx answer.
type statusError struct {
	status int
	json   bool // the body held a PagerDuty error object
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP status %d", e.status) }

// classify turns whatever went wrong in one call into the error the caller sees.
func (c *Client) classify(ctx context.Context, op string, st *callState, err error) error {
	status, header, body, lastErr, authErr := st.snapshot()
	ae := &APIError{Op: op, Account: c.account}

	var gerr gopd.APIError
	var serr *statusError
	gotStatus := errors.As(err, &gerr) || errors.As(err, &serr)
	switch {
	case gotStatus:
		// PagerDuty answered with a non-2xx status: classify from the captured response
		// (go-pagerduty's parse of the body is used only when nothing was captured).
		if status == 0 {
			status = gerr.StatusCode
			if serr != nil {
				status = serr.status
			}
		}
		obj, ok := errorBody(body)
		if !ok && gerr.APIError.Valid {
			obj, ok = gerr.APIError.ErrorObject, true
		}
		ae.Status = status
		if ok {
			ae.Code, ae.Message = obj.Code, c.redact(obj.Message)
			for _, d := range obj.Errors {
				ae.Errors = append(ae.Errors, c.redact(d))
			}
		}
		ae.Class = classifyStatus(status, ae.Code, ae.Message, ae.Errors)
		if status == http.StatusTooManyRequests {
			ae.Wait, _ = resetWait(header)
		}
		return ae

	case ctx.Err() != nil:
		// The caller's context or the call deadline ended: not PagerDuty's failure, and
		// never retryable here. The cause keeps errors.Is(err, context.DeadlineExceeded)
		// (or Canceled) true.
		cause := context.Cause(ctx)
		if !errors.Is(cause, ctx.Err()) {
			cause = fmt.Errorf("%w: %w", ctx.Err(), cause)
		}
		return fmt.Errorf("pagerduty %s (account %s): %w", op, c.account, cause)
	}

	var be *budgetError
	switch {
	case errors.As(lastErr, &be):
		ae.Class, ae.Wait, ae.Message, ae.Err = ClassRetryable, be.wait, be.Error(), be
	case authErr:
		c.classifyTokenError(ae, lastErr)
	case lastErr != nil:
		ae.Class, ae.Err = ClassRetryable, lastErr
		ae.Message = "request failed: " + c.redact(unwrapURLError(lastErr).Error())
	default:
		// Building the request or decoding a 2xx answer failed.
		ae.Class, ae.Err = ClassPermanent, err
		if errors.Is(err, io.ErrUnexpectedEOF) || isNetError(err) {
			ae.Class = ClassRetryable
		}
		ae.Message = c.redact(err.Error())
	}
	return ae
}

func (c *Client) classifyTokenError(ae *APIError, err error) {
	ae.Err = err
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		ae.Status = re.Response.StatusCode
		ae.Message = "oauth token request failed"
		if re.ErrorCode != "" {
			ae.Errors = append(ae.Errors, c.redact(strings.TrimSpace(re.ErrorCode+" "+re.ErrorDescription)))
		}
		ae.Class = ClassPermanent
		if s := ae.Status; s == http.StatusTooManyRequests || s == http.StatusRequestTimeout || s >= 500 {
			ae.Class = ClassRetryable
		}
		return
	}
	ae.Class = ClassRetryable
	ae.Message = "oauth token request failed: " + c.redact(unwrapURLError(err).Error())
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// restDo sends one request built by this package (for what go-pagerduty lacks) on the
// same HTTP client as go-pagerduty: same auth, retries, budget and classification. A
// non-2xx answer returns *statusError; out, if not nil, receives a 2xx JSON body.
func (c *Client) restDo(ctx context.Context, method, path string, q url.Values, in, out any) error {
	u := c.apiURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/vnd.pagerduty+json;version=2")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "pdworker")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_, ok := errorBody(b)
		return &statusError{status: resp.StatusCode, json: ok}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode response: %w", err)
	}
	return nil
}

// checkID refuses ids that would change the request path.
func (c *Client) checkID(op, id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/?#%\\ ") {
		return &APIError{Op: op, Account: c.account, Class: ClassPermanent, Message: fmt.Sprintf("invalid id %q", id)}
	}
	return nil
}
