package pagerduty

// APIURL exposes the resolved REST base URL to tests.
func (c *Client) APIURL() string { return c.apiURL }
