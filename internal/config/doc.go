// Package config owns the service's settings: it reads the environment once (with
// envconfig), reads PAGERDUTY_ACCOUNTS_FILE when set, checks every rule, and hands each
// component its own slice of the result. Nothing else in the program reads the
// environment.
//
// It imports internal/pagerduty (for the account description) and internal/secret, and
// nothing that does I/O besides reading the accounts file.
package config
