package card

import "time"

// SetAfterCheck makes every read of cards run f between finding no fresh answer and
// joining or starting a fetch. Set it before the reads.
func SetAfterCheck(cards *Cards, f func()) { cards.cache.afterCheck = f }

// SetDeadline changes the bound on every read of cards. Set it between reads.
func SetDeadline(cards *Cards, d time.Duration) {
	cards.cfg.Deadline = d
	cards.cache.cfg.Deadline = d
}
