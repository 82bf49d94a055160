package schemas_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/schemas"
)

func TestServiceCreateInput(t *testing.T) {
	v, err := schemas.New()
	require.NoError(t, err)
	long := strings.Repeat("x", 256)
	cases := []struct {
		name   string
		doc    string
		fields []string // nil = valid
		msg    string
	}{
		{"minimal", `{"name":"svc","description":"d","escalationPolicyId":"PABC123"}`, nil, ""},
		{"full", `{"name":"svc","description":"d","escalationPolicyId":"PABC123","alertGrouping":"content_based_intelligent","account":"eu-1"}`, nil, ""},
		{"missing all", `{}`, []string{"/description", "/escalationPolicyId", "/name"}, "is required"},
		{"empty name", `{"name":"","description":"d","escalationPolicyId":"P1"}`, []string{"/name"}, ""},
		{"blank name", `{"name":"   ","description":"d","escalationPolicyId":"P1"}`, []string{"/name"}, "must not be blank"},
		{"oversized name", `{"name":"` + long + `","description":"d","escalationPolicyId":"P1"}`, []string{"/name"}, ""},
		{"wrong type", `{"name":5,"description":"d","escalationPolicyId":"P1"}`, []string{"/name"}, "want string"},
		{"unknown grouping", `{"name":"a","description":"d","escalationPolicyId":"P1","alertGrouping":"smart"}`, []string{"/alertGrouping"}, ""},
		{"unknown field", `{"name":"a","description":"d","escalationPolicyId":"P1","escalationPolicyID":"P1"}`, []string{"/escalationPolicyID"}, "not an allowed field"},
		{"bad ep", `{"name":"a","description":"d","escalationPolicyId":"P 1"}`, []string{"/escalationPolicyId"}, ""},
		{"not an object", `[1]`, []string{""}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := v.Validate(schemas.ServiceCreateInput, []byte(tc.doc))
			if tc.fields == nil {
				require.NoError(t, err)
				return
			}
			var se *schemas.Error
			require.True(t, errors.As(err, &se), "got %v", err)
			var got []string
			for _, d := range se.Details {
				got = append(got, d.Field)
			}
			assert.Equal(t, tc.fields, got)
			assert.Contains(t, se.Error(), tc.msg)
			assert.True(t, se.Permanent())
		})
	}
}

func TestInvalidJSON(t *testing.T) {
	v, err := schemas.New()
	require.NoError(t, err)
	for _, doc := range []string{`{"name":`, `not json`, ``} {
		err := v.Validate(schemas.ServiceCreateInput, []byte(doc))
		var se *schemas.Error
		require.True(t, errors.As(err, &se), "%q: %v", doc, err)
		assert.Contains(t, se.Message, "not valid JSON")
	}
}

func TestResultSchemaRequiresErrorOnFailure(t *testing.T) {
	v, err := schemas.New()
	require.NoError(t, err)
	require.NoError(t, v.Validate(schemas.ScaffolderResult, []byte(`{"id":"j","action":"a","status":"failed","error":{"message":"m","code":"conflict"}}`)))
	require.Error(t, v.Validate(schemas.ScaffolderResult, []byte(`{"id":"j","action":"a","status":"failed"}`)))
	require.Error(t, v.Validate(schemas.ScaffolderResult, []byte(`{"id":"j","action":"a","status":"succeeded"}`)))
}

func TestRawSchemasAreServed(t *testing.T) {
	v, err := schemas.New()
	require.NoError(t, err)
	for _, n := range []string{schemas.ServiceCreateInput, schemas.ServiceCreateOutput, schemas.ScaffolderJob, schemas.ScaffolderResult,
		schemas.CatalogEntityUpserted, schemas.CatalogEntityDeleted, schemas.DepsyncRun} {
		var doc map[string]any
		require.NoError(t, json.Unmarshal(v.Raw(n), &doc), n)
		assert.Equal(t, "https://pdworker.dev/schemas/"+n+".json", doc["$id"])
	}
	assert.Nil(t, v.Raw("nope"))
	assert.Error(t, v.Validate("nope", []byte(`{}`)))
}
