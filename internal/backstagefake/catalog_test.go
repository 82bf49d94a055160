package backstagefake_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/pdworker/pdworker/internal/backstagefake"
)

type page struct {
	Items      []map[string]any `json:"items"`
	TotalItems int              `json:"totalItems"`
	PageInfo   map[string]any   `json:"pageInfo"`
}

func get(t *testing.T, base, token string, q url.Values) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+"/api/catalog/entities/by-query?"+q.Encode(), nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var raw json.RawMessage
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&raw))
	return resp.StatusCode, raw
}

func TestByQuery(t *testing.T) {
	c := backstagefake.New("tok")
	srv := httptest.NewServer(c)
	defer srv.Close()
	uid := c.Put(backstagefake.Entity{Kind: "Component", Name: "a", DependsOn: []string{"component:b"}})
	c.Put(backstagefake.Entity{Kind: "Component", Name: "b", Namespace: "shop"})
	c.Put(backstagefake.Entity{Kind: "Component", Name: "c"})
	c.Put(backstagefake.Entity{Kind: "Resource", Name: "db"})

	t.Run("401 without the token, in Backstage's error shape", func(t *testing.T) {
		status, body := get(t, srv.URL, "", nil)
		assert.Equal(t, http.StatusUnauthorized, status)
		assert.JSONEq(t, `{"error":{"name":"AuthenticationError","message":"Missing credentials"},"request":{"method":"GET","url":"/entities/by-query?"},"response":{"statusCode":401}}`, string(body))
		status, _ = get(t, srv.URL, "wrong", nil)
		assert.Equal(t, http.StatusUnauthorized, status)
	})

	t.Run("cursor pages over a filter", func(t *testing.T) {
		var refs []string
		q := url.Values{"filter": {"kind=component"}, "limit": {"2"}}
		for range 5 {
			status, body := get(t, srv.URL, "tok", q)
			require.Equal(t, http.StatusOK, status)
			var p page
			require.NoError(t, json.Unmarshal(body, &p))
			assert.Equal(t, 3, p.TotalItems)
			for _, it := range p.Items {
				m := it["metadata"].(map[string]any)
				refs = append(refs, m["namespace"].(string)+"/"+m["name"].(string))
			}
			next, ok := p.PageInfo["nextCursor"].(string)
			if !ok {
				break
			}
			q = url.Values{"cursor": {next}, "limit": {"2"}}
		}
		assert.Equal(t, []string{"default/a", "default/c", "shop/b"}, refs)
	})

	t.Run("fields keep only the paths asked for", func(t *testing.T) {
		_, body := get(t, srv.URL, "tok", url.Values{"filter": {"kind=component,metadata.name=a"}, "fields": {"kind,metadata.uid,spec.dependsOn,relations"}})
		var p page
		require.NoError(t, json.Unmarshal(body, &p))
		require.Len(t, p.Items, 1)
		assert.Equal(t, map[string]any{"kind": "Component", "metadata": map[string]any{"uid": uid},
			"spec":      map[string]any{"dependsOn": []any{"component:b"}},
			"relations": []any{map[string]any{"type": "ownedBy", "targetRef": "group:default/team-a"}, map[string]any{"type": "dependsOn", "targetRef": "component:default/b"}}}, p.Items[0])
	})

	t.Run("a change keeps the uid and changes the etag", func(t *testing.T) {
		etag := func() string {
			_, body := get(t, srv.URL, "tok", url.Values{"filter": {"metadata.name=c"}, "fields": {"metadata"}})
			var p page
			require.NoError(t, json.Unmarshal(body, &p))
			return p.Items[0]["metadata"].(map[string]any)["etag"].(string)
		}
		before := etag()
		c.Put(backstagefake.Entity{Kind: "Component", Name: "c", Annotations: map[string]string{"x": "y"}})
		assert.NotEqual(t, before, etag())
		assert.Equal(t, uid, c.Put(backstagefake.Entity{Kind: "Component", Name: "a"}))
		assert.True(t, c.Delete("Component:default/A"))
		assert.Equal(t, 3, c.Len())
	})
}
