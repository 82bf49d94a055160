package schemas_test

import (
	"encoding/json"
	"maps"
	"os"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/pdworker/pdworker/schemas"
)

// The example template in examples/ sends what the action's input schema takes, to
// the action's route.
func TestExampleTemplateMatchesTheSchema(t *testing.T) {
	raw, err := os.ReadFile("../examples/pagerduty-service-template.yaml")
	require.NoError(t, err)
	var tmpl struct {
		Spec struct {
			Steps []struct {
				Action string `json:"action"`
				Input  struct {
					Method string         `json:"method"`
					Path   string         `json:"path"`
					Body   map[string]any `json:"body"`
				} `json:"input"`
			} `json:"steps"`
		} `json:"spec"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &tmpl))
	require.NotEmpty(t, tmpl.Spec.Steps)
	step := tmpl.Spec.Steps[0]
	assert.Equal(t, "http:backstage:request", step.Action)
	assert.Equal(t, "POST", step.Input.Method)
	assert.Equal(t, "/pagerduty/actions/pagerduty:service:create", step.Input.Path)

	v, err := schemas.New()
	require.NoError(t, err)
	var schema struct {
		Required   []string       `json:"required"`
		Properties map[string]any `json:"properties"`
	}
	require.NoError(t, json.Unmarshal(v.Raw(schemas.ServiceCreateInput), &schema))
	for field := range step.Input.Body {
		assert.Contains(t, schema.Properties, field, "the template sends a field the action does not take")
	}
	sent := slices.Collect(maps.Keys(step.Input.Body))
	for _, field := range schema.Required {
		assert.Contains(t, sent, field, "the template does not send a required field")
	}
}
