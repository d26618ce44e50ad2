package cache

import "time"

// bound keeps the cached items in one list, newest first, and decides which
// one makes room when the cache is full. It evicts as SIEVE does (Zhang et
// al., NSDI '24): a hand moves from the oldest item towards the newest,
// clearing the visited bit of each item served since the hand last passed
// it, and evicts the first item that was not (or has expired). An item a
// user keeps using is never evicted while items nobody used wait behind it.
//
// Every item in the go-cache map is in the list exactly once, and only
// those: the count is exact. Cache.mu guards everything here but the items'
// visited bits, which hits set without a lock.
type bound struct {
	newest, oldest *item
	hand           *item // the next candidate for eviction; nil: start from oldest
	sweep          *item // the janitor's place in its walk; nil when none runs
	n              int
}

// links are an item's place in the bound's list.
type links struct {
	newer, older *item
}

// push adds it as the newest item.
func (b *bound) push(it *item) {
	it.older, it.newer = b.newest, nil
	if b.newest != nil {
		b.newest.newer = it
	} else {
		b.oldest = it
	}
	b.newest = it
	b.n++
}

// remove takes it out of the list; the hand and the sweep move past it.
func (b *bound) remove(it *item) {
	if b.hand == it {
		b.hand = it.newer
	}
	if b.sweep == it {
		b.sweep = it.newer
	}
	if it.newer != nil {
		it.newer.older = it.older
	} else {
		b.newest = it.older
	}
	if it.older != nil {
		it.older.newer = it.newer
	} else {
		b.oldest = it.newer
	}
	it.newer, it.older = nil, nil
	b.n--
}

// victim returns the item to evict, to be removed at once: the first one
// from the hand on that has expired or was not served since the hand last
// passed it. The list is not empty.
func (b *bound) victim(now time.Time) *item {
	it := b.hand
	if it == nil {
		it = b.oldest
	}
	// Two rounds clear every bit; hits may set them again meanwhile, so
	// stop there whatever the bits say.
	for steps := 2*b.n + 1; steps > 0; steps-- {
		if !now.Before(it.until) || !it.visited.Load() {
			break
		}
		it.visited.Store(false)
		if it = it.newer; it == nil {
			it = b.oldest
		}
	}
	b.hand = it // remove moves it on, to the next newer item
	return it
}
