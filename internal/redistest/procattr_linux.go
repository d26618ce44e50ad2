package redistest

import "syscall"

// procAttr makes the kernel SIGKILL redis-server when the thread that
// started it exits (the test process dying, even by SIGKILL or a test
// timeout, whose panic skips the cleanups). The Go runtime does not end its
// threads unless a goroutine locked to one exits, which nothing here does.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
