package pagerduty

import (
	"context"
	"net/http"
)

// Service dependency types. Requests name a technical service "service"; PagerDuty's
// answers name it "technical_service_reference" (and "business_service_reference" for
// business services).
const (
	DependencyTypeService         = "service"
	DependencyTypeBusinessService = "business_service"
)

// DependencyRef names one side of a service dependency.
type DependencyRef struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// Dependency is one service dependency: Dependent depends on Supporting.
type Dependency struct {
	ID         string        `json:"id,omitempty"`
	Type       string        `json:"type,omitempty"`
	Supporting DependencyRef `json:"supporting_service"`
	Dependent  DependencyRef `json:"dependent_service"`
}

// ServiceDependency builds the request form of "dependent depends on supporting" for
// two technical services.
func ServiceDependency(dependent, supporting string) Dependency {
	return Dependency{
		Supporting: DependencyRef{ID: supporting, Type: DependencyTypeService},
		Dependent:  DependencyRef{ID: dependent, Type: DependencyTypeService},
	}
}

type relationships struct {
	Relationships []Dependency `json:"relationships"`
}

// requestForm rewrites answer types (technical_service_reference, …) to the request
// vocabulary, so that what a read returned can be sent back to disassociate.
func requestForm(deps []Dependency) []Dependency {
	out := make([]Dependency, len(deps))
	for i, d := range deps {
		out[i] = Dependency{Supporting: requestRef(d.Supporting), Dependent: requestRef(d.Dependent)}
	}
	return out
}

func requestRef(r DependencyRef) DependencyRef {
	switch r.Type {
	case "", "technical_service_reference", "technical_service":
		r.Type = DependencyTypeService
	case "business_service_reference":
		r.Type = DependencyTypeBusinessService
	}
	return r
}

// ServiceDependencies returns the immediate dependencies of a technical service in both
// directions (GET /service_dependencies/technical_services/{id}); the service is the
// Dependent or the Supporting side of each. PagerDuty does not paginate this list.
func (c *Client) ServiceDependencies(ctx context.Context, serviceID string) ([]Dependency, error) {
	op := "list service dependencies of " + serviceID
	if err := c.checkID(op, serviceID); err != nil {
		return nil, err
	}
	return call(ctx, c, op, func(ctx context.Context) ([]Dependency, error) {
		var out relationships
		if err := c.restDo(ctx, http.MethodGet, "/service_dependencies/technical_services/"+serviceID, nil, nil, &out); err != nil {
			return nil, err
		}
		if out.Relationships == nil {
			out.Relationships = []Dependency{}
		}
		return out.Relationships, nil
	})
}

// AssociateDependencies creates dependencies in one call
// (POST /service_dependencies/associate). PagerDuty applies the batch as a whole: a
// cycle (400, code 2002), a service over its dependency limit (400) or an unknown
// service (404) fails every relationship of the call.
func (c *Client) AssociateDependencies(ctx context.Context, deps []Dependency) ([]Dependency, error) {
	return c.dependencyWrite(ctx, "associate service dependencies", "/service_dependencies/associate", deps)
}

// DisassociateDependencies removes dependencies in one call
// (POST /service_dependencies/disassociate).
func (c *Client) DisassociateDependencies(ctx context.Context, deps []Dependency) ([]Dependency, error) {
	return c.dependencyWrite(ctx, "disassociate service dependencies", "/service_dependencies/disassociate", deps)
}

func (c *Client) dependencyWrite(ctx context.Context, op, path string, deps []Dependency) ([]Dependency, error) {
	if len(deps) == 0 {
		return []Dependency{}, nil
	}
	return call(ctx, c, op, func(ctx context.Context) ([]Dependency, error) {
		var out relationships
		if err := c.restDo(ctx, http.MethodPost, path, nil, relationships{Relationships: requestForm(deps)}, &out); err != nil {
			return nil, err
		}
		return out.Relationships, nil
	})
}
