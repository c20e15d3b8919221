package storage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The benchmarks compare the dir backend's copy with `cp -a` on a real
// image from the test image cache (read only: only copied from), on the
// host's filesystem and on a loop-mounted btrfs. Both sides sync the
// filesystem before the clock stops: the backend does (a rename must not
// name data that is not on disk yet), so cp's copy is synced too.
//
//	go test ./storage -run '^$' -bench . -benchtime 3x
//
// LODGE_BENCH_IMAGE names another root filesystem directory to copy.

func benchImage(b *testing.B) string {
	if dir := os.Getenv("LODGE_BENCH_IMAGE"); dir != "" {
		return dir
	}
	for _, pattern := range []string{"debian-bookworm-*/rootfs", "busybox-*/rootfs"} {
		matches, _ := filepath.Glob(filepath.Join("/var/cache/lodge/test-images", pattern))
		if len(matches) > 0 {
			return matches[0]
		}
	}
	b.Skip("SKIPPED: no image in /var/cache/lodge/test-images (make test fills it); set LODGE_BENCH_IMAGE")
	return ""
}

// benchCopies times the backend's copy and cp's, alternately in every
// iteration (this machine's disk is shared and its speed drifts; one side
// run after the other would compare two moments, not two programs), and
// reports each as a metric: lodge-ms/copy and cp-ms/copy.
func benchCopies(b *testing.B, image, base string, reflink bool) {
	args := []string{"-a"}
	if reflink {
		args = append(args, "--reflink=always")
	}
	var lodge, cp time.Duration
	b.ResetTimer()
	for i := range b.N {
		dst := filepath.Join(base, "copy"+strconv.Itoa(i))
		lodge += timed(b, dst, func() error { return (Dir{}).Create(context.Background(), image, dst, Options{}) })
		cp += timed(b, dst, func() error {
			if out, err := exec.Command("cp", append(args, "--", image, dst)...).CombinedOutput(); err != nil {
				return fmt.Errorf("cp: %v: %s", err, out)
			}
			return syncFS(dst)
		})
	}
	b.ReportMetric(float64(lodge.Milliseconds())/float64(b.N), "lodge-ms/copy")
	b.ReportMetric(float64(cp.Milliseconds())/float64(b.N), "cp-ms/copy")
}

// timed runs copy to dst and returns how long it took, then removes dst
// and syncs, so that the next copy does not pay for this one's delete.
func timed(b *testing.B, dst string, copy func() error) time.Duration {
	start := time.Now()
	if err := copy(); err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	b.StopTimer()
	if err := os.RemoveAll(dst); err != nil {
		b.Fatal(err)
	}
	syncFS(filepath.Dir(dst))
	b.StartTimer()
	return took
}

// BenchmarkCopyImage copies the image on the filesystem of TMPDIR (ext4 on
// the test machines: a full copy).
func BenchmarkCopyImage(b *testing.B) {
	needRoot(b)
	image := benchImage(b)
	b.Logf("copying %s to %s (%s)", image, os.TempDir(), fsName(os.TempDir()))
	benchCopies(b, image, b.TempDir(), false)
}

// BenchmarkCopyImageBtrfs copies a copy of the image on a loop-mounted
// btrfs: every file a reflink.
func BenchmarkCopyImageBtrfs(b *testing.B) {
	image := benchImage(b)
	mnt := mountBtrfs(b, 2<<30)
	seed := filepath.Join(mnt, "image")
	if err := (Dir{}).Create(context.Background(), image, seed, Options{}); err != nil {
		b.Fatal(err)
	}
	benchCopies(b, seed, mnt, true)
}
