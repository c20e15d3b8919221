package tests

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"lodge/manager"
)

// Migrations between two lodge roots of this machine, each with its own
// host config (cgroup base, network tag) and the same id pool, through
// manager.LocalTarget: the engine of `lodge migrate` without the network
// API. Both roots share one kernel, so the container's two copies (the
// source's frozen tree and the target's restored one) may have the same
// name and id range for the moment they overlap.

// migrationPair is two envs whose id pools are the same (a restore needs
// the container's range) and a manager of each.
type migrationPair struct {
	a, b   *env
	ma, mb *manager.Manager
}

func newMigrationPair(t *testing.T, storage string) *migrationPair {
	t.Helper()
	needCRIU(t)
	a, b := newEnv(t), newEnv(t)
	b.firstID = a.firstID
	a.useStorage(storage)
	b.useStorage(storage)
	return &migrationPair{a: a, b: b, ma: libraryManager(t, a), mb: libraryManager(t, b)}
}

// migrate moves name from one env to the other and logs what it took.
func migrateOnce(t *testing.T, from *manager.Manager, to *manager.Manager, name string) manager.MigrateResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a hang guard
	defer cancel()
	res, err := from.Migrate(ctx, name, &manager.LocalTarget{M: to}, manager.MigrateOptions{Live: true}, func(f string, a ...any) { t.Logf("  "+f, a...) })
	if err != nil {
		t.Fatalf("migrate %s from %s to %s: %v", name, from.Root(), to.Root(), err)
	}
	var phases []string
	for _, p := range res.Phases {
		phases = append(phases, fmt.Sprintf("%s %v (%d B)", p.Name, p.Time.Round(time.Millisecond), p.Bytes))
	}
	if !strings.HasPrefix(res.LiveNote, "stop-and-copy: ") {
		t.Errorf("with Live the result does not say which mode and why: %q", res.LiveNote)
	}
	t.Logf("migrated %s: downtime %v, total %v, %d bytes sent; %s", name, res.Downtime.Round(time.Millisecond), res.Total.Round(time.Millisecond), res.Bytes, strings.Join(phases, ", "))
	return res
}

// inTargetCgroups checks that process pid is in cgroup group (a path's
// tail) on every hierarchy: CRIU put the restored tree in the target's
// cgroups, not in the source's it was dumped from.
func inTargetCgroups(t *testing.T, pid int, group string) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.Contains(line, group) {
			t.Fatalf("the restored init %d is outside the target's cgroup %s: %s", pid, group, data)
		}
	}
}

func waitCounterAbove(t *testing.T, e *env, name string, n int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("the counter of %s to pass %d", name, n), func() bool {
		r := e.run("exec", name, "--", "cat", "/counter")
		got, _ := strconv.Atoi(strings.TrimSpace(r.stdout))
		return got > n
	})
}

// gone checks that env e has nothing of container name.
func gone(t *testing.T, e *env, name string) {
	t.Helper()
	for _, i := range e.list() {
		if i.Name == name {
			t.Fatalf("%s is still listed in %s (%s)", name, e.root, i.State)
		}
	}
	if _, err := os.Stat(filepath.Join(e.root, "containers", name)); err == nil {
		t.Fatalf("%s still has a directory in %s", name, e.root)
	}
	if left, _ := filepath.Glob(filepath.Join(e.root, "tmp", "*"+name+"*")); len(left) > 0 {
		t.Fatalf("%s left %v in %s", name, left, e.root)
	}
	data, _ := os.ReadFile(filepath.Join(e.root, "idmap.json"))
	if strings.Contains(string(data), `"`+name+`"`) {
		t.Fatalf("%s still holds an id range in %s: %s", name, e.root, data)
	}
	e.assertNoLeftovers(name)
}

// TestMigrateBusybox: a busybox whose init counts in memory goes A -> B ->
// A -> B -> A; every time the counter goes on from where it was, the
// source keeps nothing, and the downtime is printed.
func TestMigrateBusybox(t *testing.T) {
	for _, storage := range []string{"dir", "overlay"} {
		t.Run(storage, func(t *testing.T) {
			p := newMigrationPair(t, storage)
			p.a.createBusybox("mig", counterEvery100ms, "limits.memory=64MiB")
			// A file in a shared layer (overlay: a snapshot of a stopped
			// container freezes its upper into one, which stays below the
			// tree after the snapshot goes): B lacks the layer.
			p.a.editRootfs("mig", func(dir string) {
				if err := os.WriteFile(dir+"layered", []byte("layered\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			})
			p.a.must("snapshot", "create", "mig", "s1")
			p.a.must("snapshot", "delete", "mig", "s1")
			p.a.must("start", "mig")
			waitCounterAbove(t, p.a, "mig", 5)
			envs := []*env{p.a, p.b}
			managers := []*manager.Manager{p.ma, p.mb}
			for round := range 4 {
				from, to := round%2, 1-round%2
				before := readCounter(t, envs[from], "mig")
				// Changes the frozen pass must carry: a file changed, one
				// deleted, one made.
				envs[from].must("exec", "mig", "--", "sh", "-c", fmt.Sprintf("echo round %d > /round; rm -f /round%d; echo x > /round%d", round, round-1, round))
				res := migrateOnce(t, managers[from], managers[to], "mig")
				if storage == "overlay" && round == 0 && (len(res.Phases) < 2 || res.Phases[1].Name != "layers") {
					t.Errorf("round 0 sent no layer: %+v", res.Phases)
				}
				gone(t, envs[from], "mig")
				i := envs[to].info("mig")
				if i.State != "RUNNING" {
					t.Fatalf("round %d: after the migration mig is %s on the target", round, i.State)
				}
				inTargetCgroups(t, i.PID, envs[to].cgroupName+"/mig")
				after := readCounter(t, envs[to], "mig")
				if after < before {
					t.Fatalf("round %d: the counter went from %d to %d: the container was booted, not migrated", round, before, after)
				}
				waitCounterAbove(t, envs[to], "mig", after)
				if got := envs[to].must("exec", "mig", "--", "cat", "/round"); strings.TrimSpace(got) != fmt.Sprintf("round %d", round) {
					t.Fatalf("round %d: /round is %q on the target", round, got)
				}
				if r := envs[to].run("exec", "mig", "--", "test", "-e", fmt.Sprintf("/round%d", round-1)); r.code == 0 {
					t.Fatalf("round %d: /round%d, deleted before the migration, is on the target", round, round-1)
				}
				envs[to].must("exec", "mig", "--", "test", "-e", fmt.Sprintf("/round%d", round))
				if got := strings.TrimSpace(envs[to].must("exec", "mig", "--", "cat", "/layered")); got != "layered" {
					t.Fatalf("round %d: /layered is %q on the target", round, got)
				}
			}
		})
	}
}

// TestMigrateRefusedByPreflight: a container holding a file of the host is
// refused before anything is frozen; it keeps running on A, and B has
// nothing of it.
func TestMigrateRefusedByPreflight(t *testing.T) {
	p := newMigrationPair(t, "dir")
	p.a.createBusybox("hf", counterEvery100ms)
	p.a.must("start", "hf")
	out, err := os.Create(filepath.Join(t.TempDir(), "exec-output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := p.a.command(context.Background(), "exec", "hf", "--", "sh", "-c", "sleep 600 </dev/null & echo $!")
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	waitCounterAbove(t, p.a, "hf", 2)
	_, err = p.ma.Migrate(context.Background(), "hf", &manager.LocalTarget{M: p.mb}, manager.MigrateOptions{}, nil)
	if !errors.Is(err, manager.ErrBlocked) || !strings.Contains(err.Error(), "file of the host") || !strings.Contains(err.Error(), "keeps running here") {
		t.Fatalf("migrate of a container holding a host file: %v", err)
	}
	t.Logf("refused: %v", err)
	if i := p.a.info("hf"); i.State != "RUNNING" {
		t.Fatalf("after the refusal hf is %s", i.State)
	}
	waitCounterAbove(t, p.a, "hf", readCounter(t, p.a, "hf"))
	gone(t, p.b, "hf")

	// The target's preflight: the name taken there.
	endPrintedPid(t, p.a, "hf", out.Name())
	p.b.createBusybox("hf")
	_, err = p.ma.Migrate(context.Background(), "hf", &manager.LocalTarget{M: p.mb}, manager.MigrateOptions{}, nil)
	if !errors.Is(err, manager.ErrExists) || !strings.Contains(err.Error(), "keeps running here") {
		t.Fatalf("migrate to a target where the name is taken: %v", err)
	}
	t.Logf("refused: %v", err)
	if i := p.a.info("hf"); i.State != "RUNNING" {
		t.Fatalf("after the refusal hf is %s", i.State)
	}
}

// TestMigrateRefusedWithoutNetwork: B lacks the network of the
// container's NIC; the target's preflight refuses, naming it, and the
// container keeps running on A.
func TestMigrateRefusedWithoutNetwork(t *testing.T) {
	p := newMigrationPair(t, "dir")
	p.a.must("network", "create", "mn", "--subnet", "10.201.41.0/24")
	p.a.createBusybox("nw", counterEvery100ms, "network.0.network=mn", "network.0.ipv4=10.201.41.10")
	p.a.must("start", "nw")
	waitCounterAbove(t, p.a, "nw", 2)
	_, err := p.ma.Migrate(context.Background(), "nw", &manager.LocalTarget{M: p.mb}, manager.MigrateOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), "network mn of nw does not exist here") || !strings.Contains(err.Error(), "keeps running here") {
		t.Fatalf("migrate to a target without the network: %v", err)
	}
	t.Logf("refused: %v", err)
	if i := p.a.info("nw"); i.State != "RUNNING" {
		t.Fatalf("after the refusal nw is %s", i.State)
	}
	waitCounterAbove(t, p.a, "nw", readCounter(t, p.a, "nw"))
	gone(t, p.b, "nw")
}

// restartedTarget is a target whose receiving process is replaced by
// another (a server restarted) once the restore ran: Abort and Commit go to
// the new one, which holds no record of the migration.
type restartedTarget struct {
	manager.LocalTarget
	after *manager.Manager
}

func (r *restartedTarget) Abort(ctx context.Context, name string) error {
	return r.after.AbortMigration(ctx, name)
}

func (r *restartedTarget) Commit(ctx context.Context, name string) error {
	return r.after.CommitMigration(ctx, name)
}

// TestMigrateRestoreFails: a restore that fails on B (its checkpoint's
// memory damaged on the way) leaves the container running on A, thawed and
// counting, and B with nothing of it; a migration after works.
func TestMigrateRestoreFails(t *testing.T) {
	p := newMigrationPair(t, "dir")
	p.a.createBusybox("rf", counterEvery100ms)
	p.a.must("start", "rf")
	waitCounterAbove(t, p.a, "rf", 5)
	before := readCounter(t, p.a, "rf")
	target := &manager.LocalTarget{M: p.mb, BeforeRestore: func(dir string) error {
		pages, _ := filepath.Glob(filepath.Join(dir, "pages-*.img"))
		pagemaps, _ := filepath.Glob(filepath.Join(dir, "pagemap-*.img"))
		for _, f := range append(pages, pagemaps...) {
			if err := os.Truncate(f, 0); err != nil {
				return err
			}
		}
		if len(pages) == 0 {
			return fmt.Errorf("no pages-*.img in %s", dir)
		}
		return nil
	}}
	_, err := p.ma.Migrate(context.Background(), "rf", target, manager.MigrateOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), "keeps running here, and the target keeps nothing of it") {
		t.Fatalf("migrate with a failing restore: %v", err)
	}
	t.Logf("failed as it should: %v", err)
	if i := p.a.info("rf"); i.State != "RUNNING" {
		t.Fatalf("after the failed migration rf is %s", i.State)
	}
	if after := readCounter(t, p.a, "rf"); after < before {
		t.Fatalf("the counter went from %d to %d", before, after)
	}
	waitCounterAbove(t, p.a, "rf", readCounter(t, p.a, "rf")) // thawed
	gone(t, p.b, "rf")

	// The restore ran on B, but its answer is lost: B removes it again
	// before A resumes its own copy. B holds it frozen until the commit.
	before = readCounter(t, p.a, "rf")
	lost := &manager.LocalTarget{M: p.mb, AfterRestore: func() error {
		if i := p.b.info("rf"); i.State != "FROZEN" {
			return fmt.Errorf("rf is %s on B after its restore, not held frozen", i.State)
		}
		return errors.New("the answer was lost")
	}}
	_, err = p.ma.Migrate(context.Background(), "rf", lost, manager.MigrateOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), "the answer was lost") || !strings.Contains(err.Error(), "the target keeps nothing of it") {
		t.Fatalf("migrate with a lost restore answer: %v", err)
	}
	t.Logf("failed as it should: %v", err)
	if i := p.a.info("rf"); i.State != "RUNNING" {
		t.Fatalf("after the lost answer rf is %s", i.State)
	}
	waitCounterAbove(t, p.a, "rf", before)
	gone(t, p.b, "rf")

	// The same, and the target's process is gone before the source's
	// Abort comes: a new one (another Manager of B's root) removes the
	// uncommitted container from what is on disk.
	before = readCounter(t, p.a, "rf")
	restarted := &restartedTarget{LocalTarget: manager.LocalTarget{M: p.mb, AfterRestore: func() error { return errors.New("the target's server died") }},
		after: libraryManager(t, p.b)}
	_, err = p.ma.Migrate(context.Background(), "rf", restarted, manager.MigrateOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), "the target keeps nothing of it") {
		t.Fatalf("migrate with a target restarted after its restore: %v", err)
	}
	if i := p.a.info("rf"); i.State != "RUNNING" {
		t.Fatalf("after the target's restart rf is %s", i.State)
	}
	waitCounterAbove(t, p.a, "rf", before)
	gone(t, p.b, "rf")

	migrateOnce(t, p.ma, p.mb, "rf")
	gone(t, p.a, "rf")
	if _, err := os.Stat(filepath.Join(p.b.root, "containers", "rf", "migration.json")); err == nil {
		t.Fatal("the migration is not committed on the target")
	}
	waitCounterAbove(t, p.b, "rf", before)
}

// TestMigrateHeld: the target's restored copy is held frozen from CRIU's
// pre-resume, before its tasks run again, until the source's commit. While
// the source still waits in its post-dump callback (its tree frozen) and B
// has answered the restore, the counter on B's disk is the one A's frozen
// tree left (B's copy never ran) and does not move for a second; after
// the commit it counts on B.
func TestMigrateHeld(t *testing.T) {
	p := newMigrationPair(t, "dir")
	p.a.createBusybox("held", counterEvery100ms)
	p.a.must("start", "held")
	waitCounterAbove(t, p.a, "held", 5)
	// Read from the hosts' disks: a frozen container takes no exec.
	counterOn := func(e *env) (int, error) {
		data, err := os.ReadFile(filepath.Join(e.root, "containers", "held", "rootfs", "counter"))
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(string(data)))
	}
	var atRestore int
	target := &manager.LocalTarget{M: p.mb, AfterRestore: func() error {
		if i := p.b.info("held"); i.State != "FROZEN" {
			return fmt.Errorf("held is %s on B after its restore, not held frozen", i.State)
		}
		src, err := counterOn(p.a)
		if err != nil {
			return err
		}
		first, err := counterOn(p.b)
		if err != nil {
			return err
		}
		if first != src {
			return fmt.Errorf("the counter is %d on B and %d on A's frozen tree: B's copy ran before the commit", first, src)
		}
		time.Sleep(time.Second)
		second, err := counterOn(p.b)
		if err != nil {
			return err
		}
		if second != first {
			return fmt.Errorf("the counter went from %d to %d on B while it was held", first, second)
		}
		atRestore = first
		t.Logf("held on B: counter %d, as A's frozen tree left it, still %d a second later", first, second)
		return nil
	}}
	res, err := p.ma.Migrate(context.Background(), "held", target, manager.MigrateOptions{}, nil)
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	t.Logf("migrated: downtime %v", res.Downtime.Round(time.Millisecond))
	gone(t, p.a, "held")
	if i := p.b.info("held"); i.State != "RUNNING" {
		t.Fatalf("after the commit held is %s on B", i.State)
	}
	waitCounterAbove(t, p.b, "held", atRestore)
}

// deadSource is a target whose source dies in the middle of the live
// tree's stream: the stream is cut after 64 KiB, and no Abort ever comes.
type deadSource struct{ manager.LocalTarget }

func (d *deadSource) ReceiveRootfs(ctx context.Context, name string, r io.Reader) error {
	err := d.LocalTarget.ReceiveRootfs(ctx, name, io.MultiReader(io.LimitReader(r, 64<<10), iotest.ErrReader(errors.New("connection reset"))))
	return fmt.Errorf("the source died mid-stream (the target's receive: %v)", err)
}

func (d *deadSource) Abort(ctx context.Context, name string) error { return nil }

// TestMigrateSourceGone: a migration whose source dies mid-stream leaves
// the target's staging directory and id range held by the live receiver
// (no Abort comes, and RecoverMigrations skips what a live receiver
// holds), until no call of the source has come for the receiver's idle
// limit (ReceiveIdle, two minutes; 3 s here): then B has nothing of it,
// and a migration after goes through.
func TestMigrateSourceGone(t *testing.T) {
	p := newMigrationPair(t, "dir")
	p.a.createBusybox("sg", counterEvery100ms)
	p.a.must("start", "sg")
	waitCounterAbove(t, p.a, "sg", 5)
	const limit = 3 * time.Second
	p.mb.ReceiveIdle = limit
	_, err := p.ma.Migrate(context.Background(), "sg", &deadSource{manager.LocalTarget{M: p.mb}}, manager.MigrateOptions{}, nil)
	cut := time.Now()
	if err == nil || !strings.Contains(err.Error(), "the source died mid-stream") {
		t.Fatalf("migrate with a source dying mid-stream: %v", err)
	}
	t.Logf("failed as it should: %v", err)
	staging := filepath.Join(p.b.root, "tmp", "sg.create")
	if _, err := os.Stat(staging); err != nil && time.Since(cut) < limit/2 {
		t.Fatalf("B's staging directory is gone before its idle limit: %v", err)
	}
	waitUntil(t, "B to remove the migration nobody calls for", func() bool {
		_, err := os.Stat(staging)
		return errors.Is(err, os.ErrNotExist)
	})
	gone(t, p.b, "sg")
	if i := p.a.info("sg"); i.State != "RUNNING" {
		t.Fatalf("sg is %s on A", i.State)
	}
	p.mb.ReceiveIdle = 0
	migrateOnce(t, p.ma, p.mb, "sg")
	gone(t, p.a, "sg")
	waitCounterAbove(t, p.b, "sg", 0)
}

// TestMigrateDebian: a Debian container with systemd goes A -> B -> A, on
// dir and on overlay storage: systemd stays running with no failed unit,
// and journald answers.
func TestMigrateDebian(t *testing.T) {
	for _, storage := range []string{"dir", "overlay"} {
		t.Run(storage, func(t *testing.T) {
			p := newMigrationPair(t, storage)
			p.a.must("create", "dm", "--template", "debian")
			p.a.must("start", "dm")
			waitRunning(t, p.a, "dm")
			envs := []*env{p.a, p.b}
			managers := []*manager.Manager{p.ma, p.mb}
			for round := range 2 {
				from, to := round%2, 1-round%2
				envs[from].must("exec", "dm", "--", "sh", "-c", fmt.Sprintf("echo %d > /root/round", round))
				migrateOnce(t, managers[from], managers[to], "dm")
				gone(t, envs[from], "dm")
				e := envs[to]
				if state := strings.TrimSpace(e.run("exec", "dm", "--", "systemctl", "is-system-running").stdout); state != "running" {
					t.Fatalf("round %d: after the migration systemd is %q", round, state)
				}
				if failed := e.must("exec", "dm", "--", "systemctl", "--failed", "--no-legend"); strings.TrimSpace(failed) != "" {
					t.Fatalf("round %d: failed units after the migration:\n%s", round, failed)
				}
				e.must("exec", "dm", "--", "journalctl", "-n", "1", "--no-pager")
				if got := strings.TrimSpace(e.must("exec", "dm", "--", "cat", "/root/round")); got != strconv.Itoa(round) {
					t.Fatalf("round %d: /root/round is %q", round, got)
				}
			}
		})
	}
}

// TestMigrateCancelled: a migration whose context is cancelled at a random
// moment either completes (the container runs on the target only) or
// leaves the container running and counting on the source, thawed, and the
// target with nothing of it. LODGE_KILL_SEED repeats a run.
func TestMigrateCancelled(t *testing.T) {
	p := newMigrationPair(t, "dir")
	p.a.createBusybox("mc", counterEvery100ms)
	p.a.must("start", "mc")
	waitCounterAbove(t, p.a, "mc", 5)
	seed := time.Now().UnixNano()
	if s, err := strconv.ParseInt(os.Getenv("LODGE_KILL_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	envs := []*env{p.a, p.b}
	managers := []*manager.Manager{p.ma, p.mb}
	from := 0
	for round := range 10 {
		to := 1 - from
		before := readCounter(t, envs[from], "mc")
		// The live phases take tens of milliseconds, the dump and the
		// restore a second each: a third of the rounds aim at the first.
		delay := time.Duration(rng.Int63n(int64(2500 * time.Millisecond)))
		if rng.Intn(3) == 0 {
			delay = time.Duration(rng.Int63n(int64(150 * time.Millisecond)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), delay)
		_, err := managers[from].Migrate(ctx, "mc", &manager.LocalTarget{M: managers[to]}, manager.MigrateOptions{}, nil)
		cancel()
		if err == nil {
			t.Logf("round %d: cancelled after %v: migrated", round, delay.Round(time.Millisecond))
			gone(t, envs[from], "mc")
			from = to
		} else {
			t.Logf("round %d: cancelled after %v: %v", round, delay.Round(time.Millisecond), err)
			if !strings.Contains(err.Error(), "keeps running here") {
				t.Fatalf("round %d: a cancelled migration failed without keeping the container: %v", round, err)
			}
			gone(t, envs[to], "mc")
		}
		if i := envs[from].info("mc"); i.State != "RUNNING" {
			t.Fatalf("round %d: mc is %s", round, i.State)
		}
		if after := readCounter(t, envs[from], "mc"); after < before {
			t.Fatalf("round %d: the counter went from %d to %d", round, before, after)
		}
		waitCounterAbove(t, envs[from], "mc", readCounter(t, envs[from], "mc"))
	}
}
