package tests

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"lodge/manager"
	"lodge/migrate"
	"lodge/storage"
)

// TestCopyFromHostileSource: what another host sends about overlay layers
// never names this host's files. A trusted host that sends a copy whose
// tree says its image is "/" gets a copy over this host's own directory of
// the image; one whose tree names a layer "../../../../etc", or whose offer
// does, is refused and leaves nothing. The "source" here is the test,
// calling the target's manager as lodge serve would.
func TestCopyFromHostileSource(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	a.useStorage("overlay")
	b.useStorage("overlay")
	a.createBusybox("src")
	mb := libraryManager(t, b)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a hang guard
	defer cancel()

	srcDir := filepath.Join(a.root, "containers", "src")
	cfg, err := os.ReadFile(filepath.Join(srcDir, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var rec storage.Record
	if data, err := os.ReadFile(filepath.Join(srcDir, storage.RecordFile)); err != nil || json.Unmarshal(data, &rec) != nil {
		t.Fatalf("the source's storage record: %v", err)
	}
	realTree, err := storage.ReadTree(filepath.Join(srcDir, "rootfs"))
	if err != nil {
		t.Fatal(err)
	}
	offer := func(name string, layers ...string) manager.CopyOffer {
		return manager.CopyOffer{Name: name, Source: "src", Config: cfg, Backend: storage.OverlayName,
			Image: rec.Image, BaseImage: "/", Layers: layers, Bytes: 1 << 20}
	}
	// send offers a copy whose tree's layers.json is forged, and finishes it.
	send := func(o manager.CopyOffer, forged storage.Tree) error {
		if _, err := mb.AcceptCopy(ctx, o); err != nil {
			return err
		}
		tree := t.TempDir()
		if out, err := exec.Command("cp", "-a", filepath.Join(srcDir, "rootfs", "upper"), tree).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
		if err := os.Mkdir(filepath.Join(tree, "work"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := storage.WriteTree(tree, forged); err != nil {
			t.Fatal(err)
		}
		r, w := io.Pipe()
		go func() {
			_, _, err := migrate.SendTree(ctx, w, tree, nil, nil)
			w.CloseWithError(err)
		}()
		if err := mb.ReceiveCopyRootfs(ctx, o.Name, r); err != nil {
			return err
		}
		_, err := mb.FinishCopy(ctx, o.Name)
		return err
	}

	if _, err := mb.AcceptCopy(ctx, offer("evil1", "../../../../etc")); err == nil || !strings.Contains(err.Error(), "invalid layer id") {
		t.Fatalf("an offer naming a layer ../../../../etc: %v", err)
	}
	gone(t, b, "evil1")

	if err := send(offer("evil2"), storage.Tree{Image: "/", Layers: []string{}}); err != nil {
		t.Fatalf("a copy whose tree names / as its image: %v", err)
	}
	got, err := storage.ReadTree(filepath.Join(b.root, "containers", "evil2", "rootfs"))
	if err != nil {
		t.Fatal(err)
	}
	if got.Image != realTree.Image || len(got.Layers) != 0 {
		t.Fatalf("the placed copy stands on %+v; want this host's image directory %s", got, realTree.Image)
	}
	if err := mb.CommitMigration(ctx, "evil2"); err != nil {
		t.Fatal(err)
	}
	b.must("start", "evil2")
	if out := b.must("exec", "evil2", "--", "ls", "/"); strings.Contains(out, "vmlinuz") || !strings.Contains(out, "bin") {
		t.Fatalf("the copy's root is not the busybox image:\n%s", out)
	}
	b.must("delete", "--force", "evil2")

	if err := send(offer("evil3"), storage.Tree{Image: realTree.Image, Layers: []string{"../../../../etc"}}); err == nil || !strings.Contains(err.Error(), "not one of those offered") {
		t.Fatalf("a copy whose tree names a layer ../../../../etc: %v", err)
	}
	gone(t, b, "evil3")
	if left, _ := filepath.Glob(filepath.Join(b.root, "tmp", "evil*")); len(left) > 0 {
		t.Fatalf("refused copies left %v", left)
	}
}
