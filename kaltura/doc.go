// Package kaltura implements the parts of the Kaltura protocol that a
// KS-injecting proxy needs: the appToken session flow, the KS and error
// formats, and where a KS lives in a request and how to replace it.
//
// It knows nothing of Caddy.
package kaltura
