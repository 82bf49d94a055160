package pdsim

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// PagerDuty error codes the simulator answers with
// (https://developer.pagerduty.com/docs/rest-api-v2/errors/).
const (
	codeInternal       = 2000
	codeInvalidInput   = 2001
	codeAuthFailed     = 2006
	codeMissingAbility = 2014
	codeRateLimit      = 2020
	codeNotFound       = 2100
)

// Messages that go with the codes above.
const (
	msgInternal       = "An internal error has occurred. PagerDuty team has been notified."
	msgInvalidInput   = "Invalid Input Provided"
	msgNoAbilities    = "Account does not have the abilities to perform the action. Please review the response for the required abilities."
	msgMissingAbility = "Missing Account Ability"
	msgRateLimit      = "Rate Limit Exceeded"
	msgNotFound       = "Not Found"
	msgConfigInvalid  = "Config is invalid."
)

// errorContentType is what PagerDuty sends on error bodies and what go-pagerduty
// requires before it parses them.
const errorContentType = "application/json; charset=utf-8"

// apiError is a PagerDuty error answer: `{"error":{"message","code","errors"?}}`.
type apiError struct {
	Status  int      `json:"-"`
	Message string   `json:"message"`
	Code    int      `json:"code"`
	Errors  []string `json:"errors,omitempty"`
}

func (e *apiError) Error() string { return e.Message }

// invalidInput is the 400/2001 answer with the given details.
func invalidInput(details ...string) *apiError {
	return &apiError{Status: http.StatusBadRequest, Message: msgInvalidInput, Code: codeInvalidInput, Errors: details}
}

func notFound() *apiError {
	return &apiError{Status: http.StatusNotFound, Message: msgNotFound, Code: codeNotFound}
}

func noAbilities() *apiError {
	return &apiError{Status: http.StatusPaymentRequired, Message: msgNoAbilities, Code: codeMissingAbility}
}

// writeAPIError sends e as PagerDuty would.
func writeAPIError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", errorContentType)
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]*apiError{"error": e})
}

// writeError sends a PagerDuty error body without details.
func writeError(w http.ResponseWriter, status, code int, message string) {
	writeAPIError(w, &apiError{Status: status, Message: message, Code: code})
}

func writeNotFound(w http.ResponseWriter) { writeAPIError(w, notFound()) }

// writeJSON sends a success body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// bodyError is the answer to a request body that could not be read or decoded: 413
// when it is larger than maxBodyBytes, otherwise invalid input with detail.
func bodyError(err error, detail string) *apiError {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Message: "Request Entity Too Large", Code: codeInvalidInput}
	}
	return invalidInput(detail)
}

// readBody reads the whole request body.
func readBody(r *http.Request) ([]byte, *apiError) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, bodyError(err, "Request body could not be read.")
	}
	return body, nil
}

// decodeWrapped reads a body of the form `{"<key>":{...}}` and returns the inner
// object's fields. A body that is too large is 413; one that is not JSON or lacks the
// wrapper is invalid input.
func decodeWrapped(r *http.Request, key string) (map[string]json.RawMessage, *apiError) {
	body, aerr := readBody(r)
	if aerr != nil {
		return nil, aerr
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(body, &outer); err != nil {
		return nil, invalidInput("Request body is not valid JSON.")
	}
	var inner map[string]json.RawMessage
	if raw, ok := outer[key]; !ok || json.Unmarshal(raw, &inner) != nil || inner == nil {
		return nil, invalidInput(key + " must be an object.")
	}
	return inner, nil
}
