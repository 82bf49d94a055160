// Command pdsim serves the PagerDuty API simulator (package internal/pdsim) over HTTP,
// for local development, demos, docker-compose and benchmarks.
//
// Flags (each with an environment variable that sets its default):
//
//	--addr         PDSIM_ADDR            listen address (default :8090)
//	--seed         PDSIM_SEED            JSON seed file (default: the built-in demo seed)
//	--rate-limit   PDSIM_RATE_LIMIT      requests per minute per account (default 960)
//	--oauth-ttl    PDSIM_OAUTH_TOKEN_TTL lifetime of OAuth access tokens (default 1h)
//	--random-seed  PDSIM_RANDOM_SEED     seed of generated IDs and keys (default 1)
//	--log-level    PDSIM_LOG_LEVEL       zerolog level (default info)
//	--log-format   PDSIM_LOG_FORMAT      json or console (default json)
package main
