package schemas

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Names of the embedded schemas (file names without ".json").
const (
	ServiceCreateInput  = "pagerduty-service-create.input"
	ServiceCreateOutput = "pagerduty-service-create.output"
	ScaffolderJob       = "scaffolder-job"
	ScaffolderResult    = "scaffolder-result"
)

//go:embed *.json
var files embed.FS

// baseURL prefixes every schema's $id.
const baseURL = "https://pdworker.dev/schemas/"

// Validator validates JSON documents against the embedded schemas. It is safe for
// concurrent use.
type Validator struct {
	compiled map[string]*jsonschema.Schema
	raw      map[string]json.RawMessage
	printer  *message.Printer
}

// New compiles every embedded schema. An error means a schema file is broken, which is
// a build defect, not a runtime condition.
func New() (*Validator, error) {
	entries, err := files.ReadDir(".")
	if err != nil {
		return nil, fmt.Errorf("read embedded schemas: %w", err)
	}
	c := jsonschema.NewCompiler()
	v := &Validator{
		compiled: map[string]*jsonschema.Schema{},
		raw:      map[string]json.RawMessage{},
		printer:  message.NewPrinter(language.English),
	}
	for _, e := range entries {
		b, err := files.ReadFile(e.Name())
		if err != nil {
			return nil, fmt.Errorf("read schema %s: %w", e.Name(), err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", e.Name(), err)
		}
		if err := c.AddResource(baseURL+e.Name(), doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", e.Name(), err)
		}
		v.raw[strings.TrimSuffix(e.Name(), ".json")] = json.RawMessage(b)
	}
	for name := range v.raw {
		s, err := c.Compile(baseURL + name + ".json")
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", name, err)
		}
		v.compiled[name] = s
	}
	return v, nil
}

// Raw returns the schema document called name, as embedded, or nil when unknown.
func (v *Validator) Raw(name string) json.RawMessage { return v.raw[name] }

// Validate checks doc against the schema called name. It returns nil, or an *Error
// saying what is wrong: invalid JSON, or each bad field.
func (v *Validator) Validate(name string, doc []byte) error {
	s, ok := v.compiled[name]
	if !ok {
		return fmt.Errorf("validate: unknown schema %q", name)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return &Error{Schema: name, Message: "request body is not valid JSON: " + jsonProblem(err)}
	}
	if err := s.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return fmt.Errorf("validate against %s: %w", name, err)
		}
		return &Error{Schema: name, Message: "invalid input", Details: v.details(ve)}
	}
	return nil
}

// jsonProblem turns a decoder error into a short, position-bearing description.
func jsonProblem(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return err.Error()
}

// details flattens a validation error tree into one entry per failing field, sorted by
// field, so messages are stable and name the exact JSON pointer.
func (v *Validator) details(ve *jsonschema.ValidationError) []FieldError {
	var out []FieldError
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		at := pointer(e.InstanceLocation)
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, p := range k.Missing {
				out = append(out, FieldError{Field: at + "/" + p, Message: "is required"})
			}
		case *kind.AdditionalProperties:
			for _, p := range k.Properties {
				out = append(out, FieldError{Field: at + "/" + p, Message: "is not an allowed field"})
			}
		case *kind.Pattern:
			msg := "does not have the required format (" + k.Want + ")"
			if k.Want == `\S` {
				msg = "must not be blank"
			}
			out = append(out, FieldError{Field: at, Message: msg})
		default:
			out = append(out, FieldError{Field: at, Message: e.ErrorKind.LocalizedString(v.printer)})
		}
	}
	walk(ve)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	// One entry per field: a value can break several rules at once ("" is both too
	// short and blank); say all of them in one place.
	merged := out[:0]
	for _, d := range out {
		if n := len(merged); n > 0 && merged[n-1].Field == d.Field {
			if !strings.Contains(merged[n-1].Message, d.Message) {
				merged[n-1].Message += "; " + d.Message
			}
			continue
		}
		merged = append(merged, d)
	}
	return merged
}

// pointerEscaper escapes one JSON pointer token (RFC 6901).
var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func pointer(tokens []string) string {
	if len(tokens) == 0 {
		return ""
	}
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(pointerEscaper.Replace(t))
	}
	return b.String()
}

// FieldError is one problem with one field, named by a JSON pointer ("/name").
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error is a document that failed validation. It is permanent: resending the same
// document can never succeed.
type Error struct {
	Schema  string
	Message string
	Details []FieldError
}

// Error lists every field problem on one line.
func (e *Error) Error() string {
	if len(e.Details) == 0 {
		return e.Message
	}
	parts := make([]string, len(e.Details))
	for i, d := range e.Details {
		parts[i] = d.Field + " " + d.Message
	}
	return e.Message + ": " + strings.Join(parts, "; ")
}

// Permanent reports that retrying cannot fix the document.
func (e *Error) Permanent() bool { return true }
