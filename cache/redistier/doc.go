// Package redistier is the shared KS tier on Redis: the at-rest format of a
// shared entry (keys.go, value.go, codec.go), a client (client.go) with a
// circuit breaker (breaker.go), a lease lock (lock.go), and the tier
// itself (tier.go): what a replica does on a local miss, on a revocation
// and on the server's invalidations. It knows nothing of Caddy or of
// Kaltura's wire format.
//
// # The shared tier's role
//
// The in-process cache stays in front: the hit path never touches Redis.
// Redis is read only on a local miss, so that a KS minted by one replica is
// used by all of them instead of each replica minting its own.
//
// Nothing readable is stored at rest: keys are a keyed hash of the local
// cache key and values are sealed (AES-GCM, the Redis key as additional
// data) by Keys; the client moves opaque bytes.
//
// One mint per user across the fleet: a replica that misses claims the
// entry's key with a marker (SET key marker NX GET PX lease: the lock, taken
// only if the key holds nothing), mints, extends the lease while the mint
// runs, and stores the KS in place of the marker (see Lease). A renewal
// takes a separate lock key and re-reads under it. A holder that dies costs
// at most one lease: the marker or lock expires by itself.
//
// Redis never causes a failed request. New does not touch the network: the
// client connects in the background and retries with backoff, so a Redis
// that is down never blocks Caddy's Provision, validate or reload. Every
// command carries its own timeout (Config.CommandTimeout) on top of the
// caller's context, and a circuit breaker (Breaker) makes operations fail
// fast with ErrUnavailable while Redis is failing; callers treat any error
// as a miss and serve from the local tier or mint locally.
//
// # Why rueidis
//
// The client is github.com/redis/rueidis rather than go-redis because it
// implements RESP3 client-side caching: with CLIENT TRACKING the server
// pushes invalidations (on write, DEL, expiry, eviction, FLUSHALL) on the
// same connection as the data: the way to wake lock waiters and spread
// revocations within a second without polling or a separate pub/sub
// channel. It also pipelines concurrent commands on a few
// connections automatically, and knows Sentinel and Cluster.
//
// The tier turns tracking on in broadcast mode for its key prefix (CLIENT
// TRACKING ON PREFIX p BCAST NOLOOP, Config.TrackPrefix): the server then
// tells every replica about every change under the prefix made by the
// others, which wakes the replicas waiting for a mint, evicts revoked KSes
// and adopts renewals. rueidis's own client-side cache (DoCache) is not
// used. This needs RESP3 (Redis 6+); the tier's claim (SET NX GET) needs
// Redis 7.0+ or Valkey. Without TrackPrefix the client also works with
// RESP2-only servers.
package redistier
