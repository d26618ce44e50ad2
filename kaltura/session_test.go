package kaltura

import "testing"

func TestTokenHashVectors(t *testing.T) {
	for _, v := range []struct{ ks, token, typ, want string }{
		{"djJ8MTIzNDU2N3xEXAMPLE==", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "SHA1", "3268c15123bf7d8c78f3f05cb2b123e478576a58"},
		{"djJ8MTIzNDU2N3xEXAMPLE==", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "MD5", "51b2f02b2f5c79a5db983c3118100441"},
		{"djJ8MTIzNDU2N3xEXAMPLE==", "a1b2c3d4e5f60718293a4b5c6d7e8f90", "SHA256", "33677c04579b0083bbd191597be358f3530e93e80b18183e3656794e783fe958"},
		{"djJ8MTIzfFdJREdFVA==", "0123456789abcdef0123456789abcdef", "SHA512", "47d9b731abeb77a917e544b0cbcba832fe1ce0285c46be21ebe7e5b8eac1a5cc9f2453f12bcd34b9484a5dd2b4f7112d4698b574e5f49225f9d44dea77963212"},
		{"djJ8MTIzfFdJREdFVA==", "0123456789abcdef0123456789abcdef", "", "cf4b50773e80aa7e846d93a6568d6c89a509817d"},
	} {
		got, err := TokenHash(v.ks, v.token, v.typ)
		if err != nil || got != v.want {
			t.Errorf("TokenHash(%s) = %s, %v; want %s", v.typ, got, err, v.want)
		}
	}
	if _, err := TokenHash("a", "b", "CRC32"); err == nil {
		t.Error("CRC32 accepted")
	}
}
