// Package schemas owns the JSON Schema documents of every message and action input and
// output this service accepts or produces (embedded from this folder), and the one
// validator that every entry point — HTTP routes and NATS consumers alike — uses.
//
// A validation failure is an *Error that names each bad field with a JSON pointer, so
// HTTP handlers can answer 400 with details and consumers can dead-letter the message
// with the same reason. It imports nothing from this module.
package schemas
