package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/pdworker/pdworker/schemas"
)

// errorBody is the service's error shape:
// {"error":{"message":"…","details":[{"field":"/name","message":"…"}]}}.
type errorBody struct {
	Error errorPayload `json:"error"`
}

type errorPayload struct {
	Message string               `json:"message"`
	Details []schemas.FieldError `json:"details,omitempty"`
}

// writeJSON answers with status and v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"message":"cannot encode the response"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers with the service's error shape.
func writeError(w http.ResponseWriter, status int, message string, details ...schemas.FieldError) {
	writeJSON(w, status, errorBody{Error: errorPayload{Message: message, Details: details}})
}

// writeTooLarge answers 413 when err comes from a body cap (*http.MaxBytesError) and
// reports whether it did.
func writeTooLarge(w http.ResponseWriter, err error) bool {
	var tooLarge *http.MaxBytesError
	if !errors.As(err, &tooLarge) {
		return false
	}
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes (HTTP_MAX_BODY_BYTES)", tooLarge.Limit))
	return true
}
