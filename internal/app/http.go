package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/pdworker/pdworker/internal/backstageauth"
	"github.com/pdworker/pdworker/internal/httpapi"
)

// listen builds the HTTP handler in front of every capability and opens its listener;
// Start serves it.
func (a *App) listen(d shared, backstage *backstageauth.Verifier, routes httpapi.Deps) error {
	routes.Validator = d.validator
	routes.Auth = httpapi.NewAuthenticator(httpapi.AuthConfig{Tokens: a.cfg.Auth.APITokens, Disabled: a.cfg.Auth.Disabled, Backstage: backstage}, a.log)
	routes.Ready = a.ready
	routes.Connected = a.nc.IsConnected
	routes.Gatherer = a.registry
	routes.Registerer = a.registry
	handler := httpapi.New(httpapi.Config{
		MaxBodyBytes: a.cfg.HTTP.MaxBodyBytes,
		ActionWait:   a.cfg.ActionWaitTimeout,
		ReadOnly:     a.cfg.ReadOnly,
	}, routes, a.log)
	// CORS sits outside the routes: preflights carry no token.
	handler = httpapi.CORS(a.cfg.HTTP.CORSOrigins, handler)

	l, err := net.Listen("tcp", a.cfg.HTTP.Addr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR %s: %w", a.cfg.HTTP.Addr, err)
	}
	a.listener = l
	a.cleanups = append(a.cleanups, func(context.Context) { _ = l.Close() })
	a.server = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: action calls wait up to ACTION_WAIT_TIMEOUT by design, and
		// every handler bounds its own work.
	}
	return nil
}
