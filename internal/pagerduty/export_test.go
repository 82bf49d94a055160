package pagerduty

import "time"

// WithBudgetWindow shortens the budget window (one minute in production) so budget tests
// run in seconds.
func WithBudgetWindow(o Options, w time.Duration) Options {
	o.budgetWindow = w
	return o
}

// APIURL exposes the resolved REST base URL to tests.
func (c *Client) APIURL() string { return c.apiURL }
