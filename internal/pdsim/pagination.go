package pdsim

import (
	"cmp"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Classic (offset) pagination limits
// (https://developer.pagerduty.com/docs/rest-api-v2/pagination/).
const (
	defaultPageLimit = 25
	maxPageLimit     = 100
	maxOffsetLimit   = 10000
)

// page is a parsed classic pagination request.
type page struct {
	limit, offset int
	total         bool
}

// pageInfo is the pagination part of a classic list answer. Total is null unless the
// request asked for total=true.
type pageInfo struct {
	Limit  int  `json:"limit"`
	Offset int  `json:"offset"`
	Total  *int `json:"total"`
	More   bool `json:"more"`
}

// parsePage reads limit, offset and total. A limit above 100 is lowered to 100, as
// PagerDuty does; offset+limit beyond 10000 is refused.
func parsePage(q url.Values) (page, *apiError) {
	p := page{limit: defaultPageLimit, total: q.Get("total") == "true"}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, invalidInput("Limit must be a non-negative integer.")
		}
		if n > 0 {
			p.limit = min(n, maxPageLimit)
		}
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, invalidInput("Offset must be a non-negative integer.")
		}
		p.offset = n
	}
	if p.offset+p.limit > maxOffsetLimit {
		return p, invalidInput("Offset must be less than 10000.")
	}
	return p, nil
}

// parseNameSortedPage reads the parameters of a list sorted by name: pagination, and
// sort_by name (the default), name:asc or name:desc (desc reports the last).
func parseNameSortedPage(q url.Values) (p page, desc bool, err *apiError) {
	if p, err = parsePage(q); err != nil {
		return p, false, err
	}
	switch q.Get("sort_by") {
	case "", "name", "name:asc":
		return p, false, nil
	case "name:desc":
		return p, true, nil
	}
	return p, false, invalidInput("Sort by is invalid.")
}

// pageOf renders the items that fall on page p and returns them with the page's
// pagination fields.
func pageOf[T, J any](p page, items []T, render func(T) J) ([]J, pageInfo) {
	n := len(items)
	start, end := min(p.offset, n), min(p.offset+p.limit, n)
	info := pageInfo{Limit: p.limit, Offset: p.offset, More: end < n}
	if p.total {
		info.Total = &n
	}
	out := make([]J, 0, end-start)
	for _, it := range items[start:end] {
		out = append(out, render(it))
	}
	return out, info
}

// sortByName orders a name-sorted list as PagerDuty does: by case-insensitive name,
// then by id; desc reverses it.
func sortByName[T any](items []T, nameAndID func(T) (string, string), desc bool) {
	slices.SortFunc(items, func(x, y T) int {
		xn, xid := nameAndID(x)
		yn, yid := nameAndID(y)
		return cmp.Or(cmp.Compare(strings.ToLower(xn), strings.ToLower(yn)), cmp.Compare(xid, yid))
	})
	if desc {
		slices.Reverse(items)
	}
}

// queryList returns the values of a repeated array parameter, accepting both `k[]` (as
// go-pagerduty sends) and `k`.
func queryList(q url.Values, key string) []string {
	return append(q[key+"[]"], q[key]...)
}
