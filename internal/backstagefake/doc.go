// Package backstagefake is an in-memory Backstage catalog REST API for tests, served
// over real HTTP: GET /api/catalog/entities/by-query with Backstage's response shape
// ({items, totalItems, pageInfo{nextCursor, prevCursor}}), repeated filter parameters
// (OR) of comma-separated key=value or key conditions (AND), fields filtering, limit,
// opaque cursors, bearer-token checks answered with Backstage's error body, and
// entities that tests add, change and delete (each change gets a new etag, the uid
// stays).
//
// It imports only the standard library; production code must not import it.
package backstagefake
