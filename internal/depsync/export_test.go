package depsync

import "time"

// SetMinLease lowers the floor of the periodic lease's time to live, so that a test
// sees the lease renewed during a run of a few seconds.
func (s *Syncer) SetMinLease(d time.Duration) { s.minLease = d }
