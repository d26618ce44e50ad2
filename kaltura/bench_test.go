package kaltura

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddy-kaltura-ks/caddy-kaltura-ks/kaltura/kalturatest"
)

// BenchmarkPrepareApply: Prepare and ApplyChecked alone, per request shape.
func BenchmarkPrepareApply(b *testing.B) {
	ks := strings.Repeat("djJ8MTIzfA", 25)
	forms := CheckKS(ks) // as the handler does, once per minted KS
	for _, sh := range []struct{ name, method, target, body string }{
		{"GET", "GET", "/api_v3/index.php?service=baseentry&action=get&entryId=1_abcdefgh&version=-1&format=1&clientTag=html5:v3.17.95&ks=" + ks, ""},
		{"multirequest", "POST", "/api_v3/service/multirequest", kalturatest.PlayerMultirequest},
		{"playManifest", "GET", "/p/123/sp/12300/playManifest/entryId/1_abcdefgh/protocol/https/format/applehttp/flavorIds/1_f1,1_f2,1_f3/a.m3u8?playSessionId=0f1e2d3c&clientTag=html5:v3.17.95", ""},
	} {
		b.Run(sh.name, func(b *testing.B) {
			b.ReportAllocs()
			// Requests are built in batches, outside the timer.
			batch := make([]*http.Request, 0, 512)
			for done := 0; done < b.N; {
				b.StopTimer()
				batch = batch[:0]
				for len(batch) < cap(batch) && done+len(batch) < b.N {
					r := httptest.NewRequest(sh.method, sh.target, nil)
					if sh.body != "" {
						r = httptest.NewRequest(sh.method, sh.target, strings.NewReader(sh.body))
						r.Header.Set("Content-Type", "application/json")
					}
					batch = append(batch, r)
				}
				b.StartTimer()
				for _, r := range batch {
					pl, err := Prepare(r, 10<<20)
					if err != nil || pl.Disposition != Inject {
						b.Fatal(err, pl.Disposition)
					}
					pl.ApplyChecked(r, ks, forms)
				}
				done += len(batch)
			}
		})
	}
}

func BenchmarkValidJSON(b *testing.B) {
	body := []byte(kalturatest.PlayerMultirequest)
	b.SetBytes(int64(len(body)))
	for i := 0; i < b.N; i++ {
		if ok, _ := validJSON(body, MaxJSONDepth); !ok {
			b.Fatal("invalid")
		}
	}
}
