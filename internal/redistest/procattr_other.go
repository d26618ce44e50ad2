//go:build !linux

package redistest

import "syscall"

// procAttr: outside Linux, a redis-server outlives a test process that dies
// without running its cleanups.
func procAttr() *syscall.SysProcAttr { return nil }
