package httpapi

import (
	"net/http"
	"slices"
	"strings"
)

// corsAllowedHeaders are the request headers a browser may send cross-origin.
var corsAllowedHeaders = []string{"authorization", "content-type", "accept", "idempotency-key"}

// CORS answers preflights and labels answers under /api/pagerduty/ for the browser
// origins in allowed (CORS_ALLOWED_ORIGINS): the Backstage app's origin when
// discovery.endpoints sends the frontend plugin straight to this service. The allowed
// origin is echoed, never "*", since requests carry credentials. With no origins it
// adds nothing; preflights from other origins get 403 without CORS headers.
func CORS(allowed []string, next http.Handler) http.Handler {
	if len(allowed) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !strings.HasPrefix(r.URL.Path, "/api/pagerduty/") {
			next.ServeHTTP(w, r)
			return
		}
		ok := slices.Contains(allowed, origin)
		h := w.Header()
		h.Add("Vary", "Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !ok {
				writeError(w, http.StatusForbidden, "origin "+origin+" is not in CORS_ALLOWED_ORIGINS")
				return
			}
			for _, want := range strings.Split(r.Header.Get("Access-Control-Request-Headers"), ",") {
				if want = strings.ToLower(strings.TrimSpace(want)); want != "" && !slices.Contains(corsAllowedHeaders, want) {
					writeError(w, http.StatusForbidden, "request header "+want+" is not allowed cross-origin")
					return
				}
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
			h.Set("Access-Control-Allow-Headers", strings.Join(corsAllowedHeaders, ", "))
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Expose-Headers", StaleHeader)
		}
		next.ServeHTTP(w, r)
	})
}
