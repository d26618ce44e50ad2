package caddymodule

import (
	"fmt"
	"strings"
)

// sweepResponsesForKS searches every response the tests received through
// the sidecar (seenBodies: headers and bodies) for a KS the sidecar
// injected, raw, URL-safe or percent-encoded: none may reach a client
// (docs/ks-echo.md). It runs after any set of tests, since it needs only
// the responses of the tests that ran. It returns what it found wrong,
// without the KS.
func sweepResponsesForKS() (problems []string) {
	injectedMu.Lock()
	set := make(map[string]bool, 2*len(injectedKS))
	for ks := range injectedKS {
		set[ks] = true
		set[strings.NewReplacer("+", "-", "/", "_").Replace(ks)] = true
	}
	injectedMu.Unlock()
	seenMu.Lock()
	defer seenMu.Unlock()
	for _, line := range strings.Split(seenBodies.String(), "\n") {
		if holdsKS(line, set) {
			problems = append(problems, fmt.Sprintf("a response reached the client with an injected KS, in a line starting %.40q", line))
			if len(problems) == 5 {
				break
			}
		}
	}
	return problems
}
