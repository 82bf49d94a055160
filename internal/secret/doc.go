// Package secret owns the Value type that carries credentials (API tokens, OAuth client
// secrets, webhook signing secrets, static bearer tokens) through the program without
// letting them reach logs, error messages, JSON or metrics by accident, and RedactURL,
// which keeps credentials carried in a URL's user info out of messages.
//
// It imports nothing from this module.
package secret
