package pki

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestLoadOrCreateKeepsOneCertificate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "host")
	var wg sync.WaitGroup
	fps := make([]string, 8)
	for i := range fps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := LoadOrCreate(dir, "test")
			if err != nil {
				t.Error(err)
				return
			}
			fps[i] = p.Fingerprint
		}()
	}
	wg.Wait()
	for _, fp := range fps {
		if fp != fps[0] || len(fp) != 64 {
			t.Fatalf("racing creators ended with different certificates: %v", fps)
		}
	}
	again, err := LoadOrCreate(dir, "test")
	if err != nil || again.Fingerprint != fps[0] {
		t.Fatalf("reload: %v, %s; want %s", err, again.Fingerprint, fps[0])
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(dir))
	if len(entries) != 1 {
		t.Errorf("temporary directories left beside the certificate: %v", entries)
	}
}

func TestNewCertificatesDiffer(t *testing.T) {
	a, _, err := New("a")
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := New("a")
	dir1, dir2 := t.TempDir(), t.TempDir()
	_, keyA, _ := New("a")
	Write(dir1, a, keyA)
	if _, err := Load(dir1); err == nil {
		t.Fatal("a certificate with another certificate's key loaded")
	}
	certB, keyB, _ := New("b")
	Write(dir2, certB, keyB)
	p, err := Load(dir2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Fingerprint != Fingerprint(p.TLS.Certificate[0]) || string(a) == string(b) {
		t.Fatal("fingerprints or certificates repeat")
	}
}
