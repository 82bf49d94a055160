package depsync

import (
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/pdworker/pdworker/internal/pagerduty"
)

// apply writes the plan in batches per account, removals first (they free room under
// PagerDuty's per-service limit), and updates the observations of the services it
// changed.
func (s *Syncer) apply(ctx context.Context, nodes []*node, rep *Report) error {
	byService := map[string]*node{}
	for _, n := range nodes {
		byService[n.account+"\x00"+n.service] = n
	}
	for _, op := range []string{"remove", "add"} {
		edges := rep.Plan.Add
		if op == "remove" {
			edges = rep.Plan.Remove
		}
		for _, account := range accountsOf(edges) {
			c, err := s.accounts.Client(account)
			if err != nil {
				return err
			}
			var batch []Edge
			for _, e := range edges {
				if e.Account == account {
					batch = append(batch, e)
				}
			}
			for start := 0; start < len(batch); start += s.cfg.BatchSize {
				chunk := batch[start:min(start+s.cfg.BatchSize, len(batch))]
				if err := s.write(ctx, c, op, chunk, byService, rep); err != nil {
					return err
				}
			}
		}
	}
	for _, n := range nodes {
		if n.dirty {
			if err := s.saveObservation(ctx, n.account, n.service, n.obs); err != nil {
				return err
			}
		}
	}
	return nil
}

func accountsOf(edges []Edge) []string {
	var out []string
	for _, e := range edges {
		if !slices.Contains(out, e.Account) {
			out = append(out, e.Account)
		}
	}
	return out
}

// write sends one batch. A batch PagerDuty refuses as a whole (a cycle, a service over
// its limit, an unknown service) is split until the refused edges are found; each is
// reported and remembered, never retried until its entity changes. Retryable failures
// are retried with growing waits; ctx cancellation ends the run.
func (s *Syncer) write(ctx context.Context, c *pagerduty.Client, op string, edges []Edge, byService map[string]*node, rep *Report) error {
	deps := make([]pagerduty.Dependency, len(edges))
	for i, e := range edges {
		deps[i] = pagerduty.ServiceDependency(e.Dependent, e.Supporting)
	}
	calls, err := s.retry(ctx, func(ctx context.Context) error {
		var err error
		if op == "add" {
			_, err = c.AssociateDependencies(ctx, deps)
		} else {
			_, err = c.DisassociateDependencies(ctx, deps)
		}
		return err
	})
	rep.PagerDutyWrites += calls
	if err == nil {
		for _, e := range edges {
			n := byService[e.Account+"\x00"+e.Dependent]
			if n != nil {
				n.dirty = true
			}
			if op == "add" {
				rep.Added = append(rep.Added, e)
				if n != nil && !slices.Contains(n.obs.Supporting, e.Supporting) {
					n.obs.Supporting = append(n.obs.Supporting, e.Supporting)
					slices.Sort(n.obs.Supporting)
				}
			} else {
				rep.Removed = append(rep.Removed, e)
				if n != nil {
					n.obs.Supporting = slices.DeleteFunc(n.obs.Supporting, func(x string) bool { return x == e.Supporting })
				}
			}
		}
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if len(edges) > 1 && !pagerduty.IsRetryable(err) {
		mid := len(edges) / 2
		if err := s.write(ctx, c, op, edges[:mid], byService, rep); err != nil {
			return err
		}
		return s.write(ctx, c, op, edges[mid:], byService, rep)
	}
	ee := EdgeError{Edge: edges[0], Op: op, Message: err.Error()}
	var ae *pagerduty.APIError
	if errors.As(err, &ae) {
		ee.Status, ee.Code = ae.Status, ae.Code
	}
	for _, e := range edges {
		x := ee
		x.Edge = e
		rep.Errors = append(rep.Errors, x)
		if !pagerduty.IsRetryable(err) && op == "add" {
			if n := byService[e.Account+"\x00"+e.Dependent]; n != nil {
				b, _ := json.Marshal(refusal{Fingerprint: n.fp, Message: ee.Message, Status: ee.Status, Code: ee.Code})
				if _, perr := s.kv.Put(ctx, refusalKey(e), b); perr != nil {
					s.log.Warn().Err(perr).Msg("could not remember a refused dependency")
				}
			}
		}
	}
	return nil
}
