package pagerduty

import (
	"context"
	"strings"

	gopd "github.com/PagerDuty/go-pagerduty"
)

// ListAbilities returns the account's abilities (GET /abilities), e.g.
// "preview_intelligent_alert_grouping".
func (c *Client) ListAbilities(ctx context.Context) ([]string, error) {
	return call(ctx, c, "list abilities", func(ctx context.Context) ([]string, error) {
		resp, err := c.pd.ListAbilitiesWithContext(ctx)
		if err != nil {
			return nil, err
		}
		return resp.Abilities, nil
	})
}

// ListEscalationPolicies returns every escalation policy whose name matches query ("" =
// all), reading every page (limit=100) within one call deadline.
func (c *Client) ListEscalationPolicies(ctx context.Context, query string) ([]EscalationPolicy, error) {
	return call(ctx, c, "list escalation policies", func(ctx context.Context) ([]EscalationPolicy, error) {
		var all []EscalationPolicy
		o := gopd.ListEscalationPoliciesOptions{Query: query, Limit: pageLimit}
		for {
			resp, err := c.pd.ListEscalationPoliciesWithContext(ctx, o)
			if err != nil {
				return nil, err
			}
			all = append(all, resp.EscalationPolicies...)
			if !resp.More || len(resp.EscalationPolicies) == 0 {
				return all, nil
			}
			o.Offset += uint(len(resp.EscalationPolicies))
		}
	})
}

// GetEscalationPolicy returns one escalation policy.
func (c *Client) GetEscalationPolicy(ctx context.Context, id string) (*EscalationPolicy, error) {
	op := "get escalation policy " + id
	if err := c.checkID(op, id); err != nil {
		return nil, err
	}
	return call(ctx, c, op, func(ctx context.Context) (*EscalationPolicy, error) {
		return c.pd.GetEscalationPolicyWithContext(ctx, id, nil)
	})
}

// CreateService creates a service (POST /services). A name already in use fails with an
// error for which IsNameTaken is true.
func (c *Client) CreateService(ctx context.Context, s Service) (*Service, error) {
	return call(ctx, c, "create service", func(ctx context.Context) (*Service, error) {
		return c.pd.CreateServiceWithContext(ctx, s)
	})
}

// GetService returns one service; includes are include[] values such as
// "integrations" or "escalation_policies".
func (c *Client) GetService(ctx context.Context, id string, includes ...string) (*Service, error) {
	op := "get service " + id
	if err := c.checkID(op, id); err != nil {
		return nil, err
	}
	return call(ctx, c, op, func(ctx context.Context) (*Service, error) {
		var o *gopd.GetServiceOptions
		if len(includes) > 0 {
			o = &gopd.GetServiceOptions{Includes: includes}
		}
		return c.pd.GetServiceWithContext(ctx, id, o)
	})
}

// FindServiceByName returns the service named name, with its integrations included, or
// (nil, nil) when there is none. It searches with GET /services?query=<name> (every
// page) and keeps an exact match; failing that, a single match that differs only in
// letter case (PagerDuty's uniqueness check is not documented as case-sensitive).
func (c *Client) FindServiceByName(ctx context.Context, name string) (*Service, error) {
	return call(ctx, c, "find service by name", func(ctx context.Context) (*Service, error) {
		if strings.TrimSpace(name) == "" {
			return nil, nil
		}
		all, err := c.listServices(ctx, name, []string{"integrations"})
		if err != nil {
			return nil, err
		}
		var folded []Service
		for i := range all {
			if all[i].Name == name {
				return &all[i], nil
			}
			if strings.EqualFold(all[i].Name, name) {
				folded = append(folded, all[i])
			}
		}
		if len(folded) == 1 {
			return &folded[0], nil
		}
		return nil, nil
	})
}

// ListServices returns every service whose name matches query ("" = all), reading every
// page within one call deadline.
func (c *Client) ListServices(ctx context.Context, query string) ([]Service, error) {
	return call(ctx, c, "list services", func(ctx context.Context) ([]Service, error) {
		return c.listServices(ctx, query, nil)
	})
}

func (c *Client) listServices(ctx context.Context, query string, includes []string) ([]Service, error) {
	var all []Service
	o := gopd.ListServiceOptions{Query: query, Includes: includes, Limit: pageLimit}
	for {
		resp, err := c.pd.ListServicesWithContext(ctx, o)
		if err != nil {
			return nil, err
		}
		all = append(all, resp.Services...)
		if !resp.More || len(resp.Services) == 0 {
			return all, nil
		}
		o.Offset += uint(len(resp.Services))
	}
}

// UpdateService updates the service s.ID with the fields set in s (PUT /services/{id}).
func (c *Client) UpdateService(ctx context.Context, s Service) (*Service, error) {
	op := "update service " + s.ID
	if err := c.checkID(op, s.ID); err != nil {
		return nil, err
	}
	return call(ctx, c, op, func(ctx context.Context) (*Service, error) {
		return c.pd.UpdateServiceWithContext(ctx, s)
	})
}

// DeleteService deletes a service.
func (c *Client) DeleteService(ctx context.Context, id string) error {
	op := "delete service " + id
	if err := c.checkID(op, id); err != nil {
		return err
	}
	_, err := call(ctx, c, op, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, c.pd.DeleteServiceWithContext(ctx, id)
	})
	return err
}

// IntegrationKeyOf returns the key of svc's first integration from vendorID that has
// one (read the service with "integrations" included).
func IntegrationKeyOf(svc *Service, vendorID string) (string, bool) {
	for _, in := range svc.Integrations {
		if in.Vendor != nil && in.Vendor.ID == vendorID && in.IntegrationKey != "" {
			return in.IntegrationKey, true
		}
	}
	return "", false
}

// CreateIntegration adds an integration to a service (POST /services/{id}/integrations).
// For the Backstage integration set Name and Vendor {ID: VendorBackstage, Type:
// "vendor_reference"}; the answer carries the IntegrationKey.
func (c *Client) CreateIntegration(ctx context.Context, serviceID string, in Integration) (*Integration, error) {
	op := "create integration on service " + serviceID
	if err := c.checkID(op, serviceID); err != nil {
		return nil, err
	}
	return call(ctx, c, op, func(ctx context.Context) (*Integration, error) {
		return c.pd.CreateIntegrationWithContext(ctx, serviceID, in)
	})
}
