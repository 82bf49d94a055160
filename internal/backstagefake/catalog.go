package backstagefake

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Entity is what a test says about a catalog entity; the fake builds the full
// Backstage entity (apiVersion, metadata with uid and etag, spec, relations) from it.
type Entity struct {
	// Kind is, for example, "Component" or "Resource".
	Kind string
	// Namespace is "" for "default".
	Namespace   string
	Name        string
	Annotations map[string]string
	// DependsOn is spec.dependsOn as written in the entity's YAML.
	DependsOn []string
}

// Ref returns the entity's ref in Backstage's lower-case "kind:namespace/name" form.
func (e Entity) Ref() string {
	ns := e.Namespace
	if ns == "" {
		ns = "default"
	}
	return strings.ToLower(e.Kind + ":" + ns + "/" + e.Name)
}

type stored struct {
	ref  string
	body map[string]any
}

// Catalog is the fake catalog; it is an http.Handler.
type Catalog struct {
	token string

	mu       sync.Mutex
	entities map[string]*stored // by ref
	fail     []int              // statuses to answer the next requests with
	agents   map[string]int     // User-Agent → requests
	requests int
}

// New returns an empty catalog that accepts Authorization: Bearer <token>.
func New(token string) *Catalog {
	return &Catalog{token: token, entities: map[string]*stored{}, agents: map[string]int{}}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Put adds an entity or replaces the one with the same ref: the uid is kept, the etag
// changes. It returns the entity's uid.
func (c *Catalog) Put(e Entity) string {
	ns := e.Namespace
	if ns == "" {
		ns = "default"
	}
	ref := e.Ref()
	c.mu.Lock()
	defer c.mu.Unlock()
	uid := randomHex(4) + "-" + randomHex(2) + "-" + randomHex(2) + "-" + randomHex(2) + "-" + randomHex(6)
	if old, ok := c.entities[ref]; ok {
		uid = old.body["metadata"].(map[string]any)["uid"].(string)
	}
	annotations := map[string]any{"backstage.io/managed-by-location": "url:https://example.com/catalog-info.yaml"}
	for k, v := range e.Annotations {
		annotations[k] = v
	}
	relations := []any{map[string]any{"type": "ownedBy", "targetRef": "group:default/team-a"}}
	dependsOn := []any{}
	for _, d := range e.DependsOn {
		dependsOn = append(dependsOn, d)
		if target, ok := fullRef(d, ns); ok {
			relations = append(relations, map[string]any{"type": "dependsOn", "targetRef": target})
		}
	}
	c.entities[ref] = &stored{ref: ref, body: map[string]any{
		"apiVersion": "backstage.io/v1alpha1",
		"kind":       e.Kind,
		"metadata": map[string]any{
			"namespace":   ns,
			"name":        e.Name,
			"uid":         uid,
			"etag":        randomHex(20),
			"annotations": annotations,
			"description": "fake entity " + ref,
		},
		"spec": map[string]any{
			"type":      "service",
			"lifecycle": "production",
			"owner":     "team-a",
			"dependsOn": dependsOn,
		},
		"relations": relations,
	}}
	return uid
}

// fullRef completes a spec.dependsOn ref the way Backstage's processor does: the kind
// is required, the namespace defaults to the entity's own.
func fullRef(ref, ns string) (string, bool) {
	kind, rest, ok := strings.Cut(ref, ":")
	if !ok || kind == "" || rest == "" {
		return "", false
	}
	if !strings.Contains(rest, "/") {
		rest = ns + "/" + rest
	}
	return strings.ToLower(kind + ":" + rest), true
}

// Delete removes the entity with this ref (any case); it reports whether it existed.
func (c *Catalog) Delete(ref string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ref = strings.ToLower(ref)
	_, ok := c.entities[ref]
	delete(c.entities, ref)
	return ok
}

// Len is the number of entities.
func (c *Catalog) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entities)
}

// FailNext makes the next len(statuses) catalog requests fail with these statuses,
// in order (Backstage's error body).
func (c *Catalog) FailNext(statuses ...int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail = append(c.fail, statuses...)
}

// Requests returns the number of catalog requests received, by User-Agent.
func (c *Catalog) Requests() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.agents))
	for k, v := range c.agents {
		out[k] = v
	}
	return out
}

// ServeHTTP serves the catalog API under /api/catalog.
func (c *Catalog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.requests++
	c.agents[r.UserAgent()]++
	var fail int
	if len(c.fail) > 0 {
		fail, c.fail = c.fail[0], c.fail[1:]
	}
	c.mu.Unlock()
	switch {
	case !c.authorized(r):
		writeError(w, r, http.StatusUnauthorized, "AuthenticationError", "Missing credentials")
	case fail != 0:
		writeError(w, r, fail, "Error", "injected failure")
	case r.Method == http.MethodGet && r.URL.Path == "/api/catalog/entities/by-query":
		c.byQuery(w, r)
	default:
		writeError(w, r, http.StatusNotFound, "NotFoundError", "Not Found")
	}
}

func (c *Catalog) authorized(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(tok), []byte(c.token)) == 1
}

// writeError answers with Backstage's error body.
func writeError(w http.ResponseWriter, r *http.Request, status int, name, message string) {
	writeJSON(w, status, map[string]any{
		"error":    map[string]any{"name": name, "message": message},
		"request":  map[string]any{"method": r.Method, "url": strings.TrimPrefix(r.URL.RequestURI(), "/api/catalog")},
		"response": map[string]any{"statusCode": status},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// cursor is the fake's opaque cursor: the query it continues and the last ref served.
type cursor struct {
	Filters []string `json:"f"`
	After   string   `json:"a"`
	Total   int      `json:"t"`
}

func (c *Catalog) byQuery(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, r, http.StatusBadRequest, "InputError", "Invalid limit, must be a non-negative integer")
			return
		}
		limit = n
	}
	var cur cursor
	if v := q.Get("cursor"); v != "" {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || json.Unmarshal(b, &cur) != nil {
			writeError(w, r, http.StatusBadRequest, "InputError", "Malformed cursor")
			return
		}
	} else {
		cur.Filters = q["filter"]
	}
	var fields []string
	for _, f := range q["fields"] {
		for _, p := range strings.Split(f, ",") {
			if p = strings.TrimSpace(p); p != "" {
				fields = append(fields, p)
			}
		}
	}

	c.mu.Lock()
	var matched []*stored
	for _, e := range c.entities {
		if matches(e.body, cur.Filters) {
			matched = append(matched, e)
		}
	}
	slices.SortFunc(matched, func(a, b *stored) int { return strings.Compare(a.ref, b.ref) })
	total := len(matched)
	var page []map[string]any
	var last string
	more := false
	for _, e := range matched {
		if cur.After != "" && e.ref <= cur.After {
			continue
		}
		if len(page) == limit {
			more = true
			break
		}
		page = append(page, pick(e.body, fields))
		last = e.ref
	}
	c.mu.Unlock()

	info := map[string]any{}
	if more {
		b, _ := json.Marshal(cursor{Filters: cur.Filters, After: last, Total: total})
		info["nextCursor"] = base64.RawURLEncoding.EncodeToString(b)
	}
	if cur.After != "" {
		b, _ := json.Marshal(cursor{Filters: cur.Filters, Total: total})
		info["prevCursor"] = base64.RawURLEncoding.EncodeToString(b)
	}
	if page == nil {
		page = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": page, "totalItems": total, "pageInfo": info})
}

// matches applies Backstage's filter semantics: any filter parameter may match (OR);
// within one, every comma-separated condition must (AND); "key=value" compares
// case-insensitively (descending into arrays), "key" requires the field to exist.
func matches(body map[string]any, filters []string) bool {
	if len(filters) == 0 {
		return true
	}
	for _, f := range filters {
		all := true
		for _, cond := range strings.Split(f, ",") {
			key, value, hasValue := strings.Cut(strings.TrimSpace(cond), "=")
			vals := lookup(body, strings.Split(strings.ToLower(key), "."))
			ok := len(vals) > 0
			if hasValue {
				ok = false
				for _, v := range vals {
					if s, isStr := v.(string); isStr && strings.EqualFold(s, value) {
						ok = true
					}
				}
			}
			if !ok {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// lookup returns the values at a dotted path (keys compared case-insensitively),
// descending into arrays.
func lookup(v any, path []string) []any {
	if len(path) == 0 {
		if arr, ok := v.([]any); ok {
			return arr
		}
		return []any{v}
	}
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			if strings.EqualFold(k, path[0]) {
				return lookup(child, path[1:])
			}
		}
		// Annotation keys contain dots: try the rest of the path as one key.
		joined := strings.Join(path, ".")
		for k, child := range x {
			if strings.EqualFold(k, joined) {
				return lookup(child, nil)
			}
		}
	case []any:
		var out []any
		for _, item := range x {
			out = append(out, lookup(item, path)...)
		}
		return out
	}
	return nil
}

// pick keeps only the given dotted paths of an entity (all of it when none).
func pick(body map[string]any, fields []string) map[string]any {
	if len(fields) == 0 {
		return deepCopy(body).(map[string]any)
	}
	out := map[string]any{}
	for _, f := range fields {
		copyPath(body, out, strings.Split(f, "."))
	}
	return out
}

func copyPath(src, dst map[string]any, path []string) {
	v, ok := src[path[0]]
	if !ok {
		return
	}
	if len(path) == 1 {
		dst[path[0]] = deepCopy(v)
		return
	}
	child, ok := v.(map[string]any)
	if !ok {
		return
	}
	next, ok := dst[path[0]].(map[string]any)
	if !ok {
		next = map[string]any{}
		dst[path[0]] = next
	}
	copyPath(child, next, path[1:])
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, c := range x {
			out[k] = deepCopy(c)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, c := range x {
			out[i] = deepCopy(c)
		}
		return out
	}
	return v
}

// String describes the catalog for test failure messages.
func (c *Catalog) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("fake Backstage catalog with %d entities, %d requests", len(c.entities), c.requests)
}
