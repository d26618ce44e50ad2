package caddymodule

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// The harness itself, without Redis: sidecar processes start, listen on
// 127.0.0.1 only, serve, get killed, and stop by themselves (stdin closed,
// maximum life); each process mints its own KSes; a sidecar with
// max_inspect_size 1 does not notice a revoked KS (the revocation test
// relies on it).
func TestFleetHarness(t *testing.T) {
	f := startFleet(t, 3, fleetOpts{handler: func(i int, h map[string]any) {
		if i == 0 {
			h["max_inspect_size"] = 1
		}
	}})
	for _, s := range f.sidecars {
		ls, err := listeners(s.Pid())
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"tcp 127.0.0.1:" + fmt.Sprint(s.port)}
		if !slices.Equal(ls, want) {
			t.Errorf("sidecar %d listens on %q, want %q", s.i, ls, want)
		}
	}

	// One user on each sidecar: three processes, three mints, three KSes.
	var res []fleetResult
	for i := range 3 {
		res = append(res, f.get(i, "smoke-a"))
	}
	requireOK(t, "smoke-a", res)
	if m := f.mints(); m != 3 {
		t.Fatalf("one user on 3 sidecars without Redis: %d mints, want 3", m)
	}
	for _, r := range res {
		if r.cache != "miss" || len(r.records) != 1 {
			t.Fatalf("first request on a sidecar: %v, want cache miss and one record", r)
		}
	}
	if res[0].ks() == res[1].ks() || res[1].ks() == res[2].ks() || res[0].ks() == res[2].ks() {
		t.Fatal("separate sidecars without Redis share a KS")
	}
	ksA := []string{res[0].ks(), res[1].ks(), res[2].ks()}

	// Concurrent requests: one mint per process.
	var calls []fleetCall
	for i := range 3 {
		for range 20 {
			calls = append(calls, fleetCall{i, "smoke-b"})
		}
	}
	before := f.mints()
	res = f.fire(calls, 0)
	requireOK(t, "smoke-b", res)
	if m := f.mints() - before; m != 3 {
		t.Fatalf("60 concurrent requests of one user on 3 sidecars: %d mints, want 3", m)
	}
	perSidecar := map[int]map[string]bool{}
	for _, r := range res {
		if perSidecar[r.sidecar] == nil {
			perSidecar[r.sidecar] = map[string]bool{}
		}
		perSidecar[r.sidecar][r.ks()] = true
	}
	for i, kses := range perSidecar {
		if len(kses) != 1 {
			t.Fatalf("sidecar %d used %d KSes for one user", i, len(kses))
		}
	}

	// A revoked KS: sidecar 0 (max_inspect_size 1) streams Kaltura's
	// answer and keeps its KS; sidecar 1 evicts it and retries.
	f.emu.Revoke(ksA[0])
	f.emu.Revoke(ksA[1])
	r0 := f.get(0, "smoke-a")
	if r0.ok() || !slices.Equal(r0.injected(), []string{ksA[0]}) || !strings.Contains(r0.body, "INVALID_KS") {
		t.Fatalf("revoked KS on sidecar 0 (max_inspect_size 1): %v, want its old KS once and INVALID_KS", r0)
	}
	r1 := f.get(1, "smoke-a")
	if !r1.ok() || len(r1.records) != 2 || r1.records[0].KS != ksA[1] || r1.ks() == ksA[1] {
		t.Fatalf("revoked KS on sidecar 1: %v, want a retry with a new KS", r1)
	}

	// SIGKILL: the process is gone and its port closed.
	f.sc(2).Kill()
	if !f.sc(2).Exited() {
		t.Fatal("sidecar 2 runs after Kill")
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(f.sc(2).URL(), "http://"), time.Second); err == nil {
		c.Close()
		t.Fatal("sidecar 2's port accepts connections after Kill")
	}

	// Closing stdin stops a sidecar, gracefully (exit code 0).
	s1 := f.sc(1)
	if err := s1.Stop(); err != nil {
		t.Fatal(err)
	}
	if code := s1.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("sidecar 1 stopped by closing stdin: %v; stderr:\n%s", s1.cmd.ProcessState, s1.stderrText())
	}
	if r := f.get(0, "smoke-b"); !r.ok() {
		t.Fatalf("sidecar 0 after the others stopped: %v", r)
	}

	// The maximum life stops a sidecar whose test does not.
	short := startFleet(t, 1, fleetOpts{life: 3 * time.Second})
	if r := short.get(0, "smoke-c"); !r.ok() {
		t.Fatalf("short-lived sidecar: %v", r)
	}
	select {
	case <-short.sc(0).exited:
	case <-time.After(10 * time.Second):
		t.Fatal("a sidecar with a maximum life of 3s still runs after 10s")
	}
	s := short.sc(0)
	if code := s.cmd.ProcessState.ExitCode(); code != sidecarExitLife {
		t.Fatalf("sidecar past its maximum life: %v, want exit code %d; stderr:\n%s", s.cmd.ProcessState, sidecarExitLife, s.stderrText())
	}
	s.killed.Store(true) // its exit code is not 0, and that is right
}
