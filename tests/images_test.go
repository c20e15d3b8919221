package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type image struct {
	ID       string   `json:"id"`
	Aliases  []string `json:"aliases"`
	Template string   `json:"template"`
}

func (e *env) images() []image {
	e.t.Helper()
	var imgs []image
	if err := json.Unmarshal([]byte(e.must("image", "list", "--format", "json")), &imgs); err != nil {
		e.t.Fatal(err)
	}
	return imgs
}

// TestImageImportExport: an image exported to a tarball (each compression)
// imports again, a container is made from it and boots, and mistakes are
// refused clearly.
func TestImageImportExport(t *testing.T) {
	e := newEnv(t)
	e.setImages(t.TempDir())
	e.createBusybox("src")
	built := e.images()
	if len(built) != 1 || built[0].Template != "busybox" {
		t.Fatalf("image list after a busybox create: %+v", built)
	}
	dir := t.TempDir()
	for _, name := range []string{"bb.tar", "bb.tar.gz", "bb.tar.xz", "bb.tar.zst"} {
		file := filepath.Join(dir, name)
		e.must("image", "export", built[0].ID, file)
		alias := "bb-" + strings.ReplaceAll(strings.TrimPrefix(name, "bb."), ".", "-")
		e.must("image", "import", file, "--alias", alias)
	}
	// Four files, four images (ids come from the files' content); importing
	// one file again only adds an alias.
	e.must("image", "import", filepath.Join(dir, "bb.tar"), "--alias", "bb-again")
	imgs := e.images()
	if len(imgs) != 5 {
		t.Fatalf("image list after importing four files and one again: %+v", imgs)
	}
	e.must("create", "fromimg", "--image", "bb-tar-zst")
	e.must("start", "fromimg")
	if got := strings.TrimSpace(e.must("exec", "fromimg", "--", "hostname")); got != "fromimg" {
		t.Errorf("hostname of a container made from an image: %q", got)
	}
	if got := strings.TrimSpace(e.must("exec", "fromimg", "--", "id", "-u")); got != "0" {
		t.Errorf("id -u: %q", got)
	}
	e.must("stop", "--force", "fromimg")

	e.expectFail(4, "already exists", "image", "import", filepath.Join(dir, "bb.tar"), "--alias", "bb-tar")
	e.expectFail(2, "image alias", "image", "import", filepath.Join(dir, "bb.tar"), "--alias", "../x")
	os.WriteFile(filepath.Join(dir, "junk.tar"), []byte("not a tarball"), 0o644)
	e.expectFail(1, "not a tar archive", "image", "import", filepath.Join(dir, "junk.tar"), "--alias", "junk")
	e.expectFail(2, "name the file", "image", "export", "bb-tar", filepath.Join(dir, "out.zip"))
	e.expectFail(3, "not found", "image", "export", "nosuch", filepath.Join(dir, "out.tar"))
	e.expectFail(2, "--template or --image", "create", "both", "--template", "busybox", "--image", "bb-tar")
	e.must("image", "delete", "bb-tar-gz")
	if got := len(e.images()); got != 4 {
		t.Errorf("%d images after deleting one of 5", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 5 {
		t.Errorf("export left temporary files: %v", entries)
	}
}

// TestConcurrentCreatesBuildOnce: creates of one template at once build its
// image once; the others wait and copy it.
func TestConcurrentCreatesBuildOnce(t *testing.T) {
	e := newEnv(t)
	e.setImages(t.TempDir())
	names := []string{"cc1", "cc2", "cc3", "cc4"}
	var builds int
	results := make(chan result, len(names))
	for _, name := range names {
		go func() { results <- e.run("create", name, "--template", "busybox") }()
	}
	for range names {
		r := <-results
		if r.code != 0 {
			t.Errorf("create: %s", r)
		}
		builds += strings.Count("\n"+r.stderr, "\nbuilding image")
	}
	if builds != 1 {
		t.Errorf("the image was built %d times, want once", builds)
	}
	if got := len(e.list()); got != len(names) {
		t.Errorf("%d containers, want %d", got, len(names))
	}
}

// TestInterruptedCreate: Ctrl-C during a debootstrap, or a kill -9 of lodge,
// leaves no container, no image, no debootstrap running and no mount.
func TestInterruptedCreate(t *testing.T) {
	e := newEnv(t)
	images := t.TempDir()
	e.setImages(images)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := e.command(ctx, "create", "half", "--template", "debian", "-o", "packages=less")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "debootstrap to be under way", func() bool { return debootstrapRunning(images) })
			// Interrupt it in the middle of its work, with children (wget,
			// dpkg) running: once its log says it fetches packages.
			waitUntil(t, "debootstrap to fetch packages", func() bool { return buildLogMatches(images, `(?m)^I: Retrieving \S+ \d`) })
			cmd.Process.Signal(sig)
			cmd.Wait()
			if cmd.ProcessState.ExitCode() == 0 {
				t.Fatalf("create survived %v:\n%s", sig, stderr.String())
			}
			waitUntil(t, "debootstrap to end with lodge", func() bool { return !debootstrapRunning(images) })
			if infos := e.list(); len(infos) != 0 {
				t.Errorf("a half-made container is listed: %+v", infos)
			}
			if imgs := e.images(); len(imgs) != 0 {
				t.Errorf("a half-made image is listed: %+v", imgs)
			}
			if mounts := mountsUnder(images); len(mounts) > 0 {
				t.Errorf("mounts left behind: %v", mounts)
			}
		})
	}
	// What a kill -9 could not clean is swept by the next create.
	e.createBusybox("after")
	if left, _ := filepath.Glob(filepath.Join(e.root, "tmp", "*")); len(left) != 0 {
		t.Errorf("leftovers in ROOT/tmp after the next create: %v", left)
	}
}

// debootstrapRunning reports whether a debootstrap is building into dir.
// buildLogMatches reports whether the build log of an image being built in
// the image cache dir matches pattern.
func buildLogMatches(dir, pattern string) bool {
	logs, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*", "build.log"))
	for _, log := range logs {
		if data, err := os.ReadFile(log); err == nil && regexpFind(pattern, string(data)) {
			return true
		}
	}
	return false
}

func debootstrapRunning(dir string) bool {
	out, _ := exec.Command("pgrep", "-f", "debootstrap.*"+dir).Output()
	return len(bytes.TrimSpace(out)) > 0
}
