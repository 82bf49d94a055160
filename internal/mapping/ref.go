package mapping

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrInvalidRef reports an entity ref that is not [<kind>:][<namespace>/]<name> with
// valid parts.
var ErrInvalidRef = errors.New("invalid entity ref")

// DefaultNamespace is the namespace of refs that name none.
const DefaultNamespace = "default"

// refPart matches a kind, namespace or name: runs of letters and digits separated by
// '-', '_' or '.', at most 253 characters (names are 63 in Backstage; kinds and
// namespaces are checked with the same rule).
var refPart = regexp.MustCompile(`^[a-z0-9]+(?:[-_.][a-z0-9]+)*$`)

// NormalizeRef returns ref in its canonical form "kind:namespace/name", lower case,
// with the namespace "default" when it has none: "Component:Foo" gives
// "component:default/foo". A ref without a kind is an error (use NormalizeRefIn to
// supply a default kind), as is any empty or malformed part.
func NormalizeRef(ref string) (string, error) {
	return NormalizeRefIn(ref, "", DefaultNamespace)
}

// EntityRef returns the normalised ref of an entity from its kind, metadata.namespace
// ("" means "default") and metadata.name, as a Backstage entity states them.
func EntityRef(kind, namespace, name string) (string, error) {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return NormalizeRef(kind + ":" + namespace + "/" + name)
}

// NormalizeRefIn is NormalizeRef with defaults: defaultKind is used when ref has no
// kind ("" means the kind is required) and defaultNamespace when it has no namespace
// ("" means "default"). Backstage's spec.dependsOn needs a kind and defaults the
// namespace to that of the entity that declares it.
func NormalizeRefIn(ref, defaultKind, defaultNamespace string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(ref))
	if s == "" {
		return "", fmt.Errorf("%w: empty", ErrInvalidRef)
	}
	kind := strings.ToLower(defaultKind)
	if i := strings.IndexByte(s, ':'); i >= 0 {
		kind, s = s[:i], s[i+1:]
	}
	if kind == "" {
		return "", fmt.Errorf("%w %q: the kind is missing (want kind:namespace/name)", ErrInvalidRef, ref)
	}
	ns := strings.ToLower(defaultNamespace)
	if ns == "" {
		ns = DefaultNamespace
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		ns, s = s[:i], s[i+1:]
	}
	for _, p := range []struct{ what, v string }{{"kind", kind}, {"namespace", ns}, {"name", s}} {
		if len(p.v) > 253 || !refPart.MatchString(p.v) {
			return "", fmt.Errorf("%w %q: bad %s %q", ErrInvalidRef, ref, p.what, p.v)
		}
	}
	return kind + ":" + ns + "/" + s, nil
}

// SplitRef splits a normalised ref into kind, namespace and name.
func SplitRef(ref string) (kind, namespace, name string) {
	kind, rest, _ := strings.Cut(ref, ":")
	namespace, name, _ = strings.Cut(rest, "/")
	return kind, namespace, name
}
