package pdsim

import "time"

// SetClock replaces the simulator's clock; call it before serving requests.
func (s *Sim) SetClock(now func() time.Time) { s.now = now }
