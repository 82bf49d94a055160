package pdsim

import (
	"math/rand/v2"
	"sync"
)

const (
	idAlphabet  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	hexAlphabet = "0123456789abcdef"
	tokAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
)

// idSource makes object IDs, integration keys and OAuth tokens from a seeded random
// source, and remembers every object ID so none is handed out twice.
type idSource struct {
	mu   sync.Mutex
	rng  *rand.Rand
	used map[string]bool
}

func newIDSource(seed int64) *idSource {
	return &idSource{rng: rand.New(rand.NewPCG(uint64(seed), 0x1d5)), used: map[string]bool{}}
}

// objectID returns a new PagerDuty-style ID: "P" and six upper-case alphanumerics.
func (g *idSource) objectID() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		id := "P" + g.randomLocked(idAlphabet, 6)
		if !g.used[id] {
			g.used[id] = true
			return id
		}
	}
}

// reserve marks a seeded ID as taken; it reports false when it already was.
func (g *idSource) reserve(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.used[id] {
		return false
	}
	g.used[id] = true
	return true
}

// release forgets IDs reserved by a seed that was then refused.
func (g *idSource) release(ids []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, id := range ids {
		delete(g.used, id)
	}
}

// integrationKey returns a 32-character routing key.
func (g *idSource) integrationKey() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.randomLocked(hexAlphabet, 32)
}

// token returns an opaque token of n characters after prefix.
func (g *idSource) token(prefix string, n int) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return prefix + g.randomLocked(tokAlphabet, n)
}

func (g *idSource) randomLocked(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.rng.IntN(len(alphabet))]
	}
	return string(b)
}
