package pagerduty

import "time"

// APIURL exposes the resolved REST base URL to tests.
func (c *Client) APIURL() string { return c.apiURL }

// OnBudgetGrant makes c's budget tell f the time of every grant (API calls, retries and
// token fetches alike). Set it before c sends requests.
func (c *Client) OnBudgetGrant(f func(time.Time)) { c.budget.granted = f }
