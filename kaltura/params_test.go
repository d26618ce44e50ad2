package kaltura

import "testing"

// sameKSParam checks ksParam's shortcut for simple names against the splits.
func sameKSParam(t *testing.T, name string) {
	t.Helper()
	sub, ok := ksParam(name)
	wsub, wok := ksParamSplit(name)
	if ok != wok || sub != wsub {
		t.Fatalf("ksParam(%q) = %d, %v; the splits say %d, %v", name, sub, ok, wsub, wok)
	}
}

func TestKSParamShortcut(t *testing.T) {
	for _, name := range []string{"ks", "KS", "ks_", "_ks", "k", "ks1", "service", "1:ks", "1[ks]", " ks", "ks:x", "ks[", "0:ks:x", "-1:ks", "01:ks", "1", ""} {
		sameKSParam(t, name)
	}
	if sub, ok := ksParam("ks"); !ok || sub != noSub {
		t.Fatalf("ksParam(ks) = %d, %v", sub, ok)
	}
	if sub, ok := ksParam("2:ks"); !ok || sub != 2 {
		t.Fatalf("ksParam(2:ks) = %d, %v", sub, ok)
	}
}
