package tests

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Kills during lodge migrate between two hosts (issue 13): the target's
// lodge serve killed (SIGKILL, by its pid) at random moments of a
// migration, ten times, then restarted at once; and the source's lodge
// migrate killed once the target has restored the container, and once it
// commits. A kill aims at a phase of a migration measured first (from its
// progress lines: preflight, rootfs, dump, rootfs delta, checkpoint
// transfer, restore, commit, source removed) and at a random moment of
// that phase's measured length; every fourth round kills h2's serve once
// h2's monitor has restored the tree (its state file), before h1 hears of
// it. After each round the
// container lives on exactly one side, running, thawed and counting:
// either the migration failed and it runs on h1, h2 keeping nothing of it
// (directory, staging, id range, cgroups, processes, mounts), or it
// completed and runs on h2 only (then it is moved back for the next
// round). The seed of the random moments is logged; LODGE_KILL_SEED
// repeats a run.

// migrationPhases names the phase each progress line of lodge migrate
// begins (manager.Migrate's progress), in order.
var migrationPhases = []struct{ prefix, phase string }{
	{"preflight of", "preflight"},
	{"sending layer", "layers"},
	{"sending the root filesystem", "rootfs"},
	{"checkpointing", "dump"},
	{"sending the changes", "rootfs delta"},
	{"sending the checkpoint", "checkpoint transfer"},
	{"restoring", "restore"},
	{"committing", "commit"},
	{"removing", "source removed"},
}

// migrateRun is a lodge migrate running on a host, its progress lines
// timestamped as they come.
type migrateRun struct {
	cmd   *exec.Cmd
	began time.Time
	done  chan struct{}

	mu     sync.Mutex
	phase  string          // the phase of the last progress line
	phases []phaseAt       // each phase with its offset from the start
	said   strings.Builder // stderr
	out    lockedBuffer    // stdout
}

func startMigrate(h *host, name, to string) *migrateRun {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // a hang guard
	cmd := h.command(ctx, "migrate", name, to)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		h.t.Fatal(err)
	}
	r := &migrateRun{cmd: cmd, began: time.Now(), done: make(chan struct{}), phase: "start"}
	cmd.Stdout = &r.out
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	go func() {
		defer cancel()
		defer close(r.done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			r.mu.Lock()
			r.said.WriteString(line + "\n")
			for _, p := range migrationPhases {
				if strings.HasPrefix(line, p.prefix) {
					if r.phase != p.phase {
						r.phases = append(r.phases, phaseAt{p.phase, time.Since(r.began)})
					}
					r.phase = p.phase
				}
			}
			r.mu.Unlock()
		}
		cmd.Wait()
	}()
	return r
}

// phaseAt is a phase and when it began, from the migration's start.
type phaseAt struct {
	name string
	at   time.Duration
}

// phaseIndex is the place of a phase in migrationPhases.
func phaseIndex(name string) int {
	for i, p := range migrationPhases {
		if p.phase == name {
			return i
		}
	}
	return -1
}

// untilPhase waits until the migration is in phase name or past it, and
// tells whether it still runs.
func (r *migrateRun) untilPhase(name string) bool {
	for !r.ended() && phaseIndex(r.current()) < phaseIndex(name) {
		time.Sleep(time.Millisecond)
	}
	return !r.ended()
}

// current is the phase the migration is in, by its last progress line.
func (r *migrateRun) current() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.phase
}

// wait waits for lodge migrate to end and returns its exit status and
// what it printed (stderr, then stdout).
func (r *migrateRun) wait() (int, string) {
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd.ProcessState.ExitCode(), r.said.String() + r.out.String()
}

func (r *migrateRun) ended() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// heldWarning is what lodge serve logs at its start of each container it
// holds for its source's word.
const heldWarning = "held frozen, uncommitted"

// heldOrGone tells, for container name on host h, whether it is absent
// ("gone"), held frozen ("held": a restored copy waiting for its source's
// commit), or anything else (its state).
func heldOrGone(h *host, name string) string {
	i, ok := h.listed(name)
	if !ok {
		return "gone"
	}
	if (i.State == "FROZEN" || i.State == "RUNNING") && cgroupFrozen(i) {
		if _, err := os.Stat(filepath.Join(h.root, "containers", name, "migration.json")); err == nil {
			return "held" // uncommitted: its migration's marker
		}
		return "FROZEN"
	}
	return i.State
}

// cgroupFrozen tells whether a running container's freezer (v1's, or
// cgroup2's) says frozen.
func cgroupFrozen(i info) bool {
	for key, dir := range i.Cgroups {
		if key == "freezer" {
			if data, _ := os.ReadFile(filepath.Join(dir, "freezer.state")); strings.TrimSpace(string(data)) != "THAWED" {
				return true
			}
		} else if data, err := os.ReadFile(filepath.Join(dir, "cgroup.freeze")); err == nil && strings.TrimSpace(string(data)) == "1" {
			return true
		}
	}
	return false
}

// restoredOn waits until host h has a state file for name (its monitor
// writes it when CRIU has restored the tree, before it runs again), or
// the run ends; it returns whether it appeared.
func restoredOn(h *host, name string, r *migrateRun) bool {
	state := filepath.Join(h.root, "run", name+".json")
	for !r.ended() {
		if _, err := os.Stat(state); err == nil {
			return true
		}
		time.Sleep(time.Millisecond)
	}
	return false
}

func TestRemoteMigrateKilled(t *testing.T) {
	needCRIU(t)
	hs := newMigrationHosts(t)
	h1, h2 := hs.h1, hs.h2
	hs.serveEachOther()
	rng := killRand(t)
	const name = "mk"
	h1.createBusybox(name, counterEvery100ms, "limits.memory=64MiB")
	h1.must("start", name)
	waitCounterAbove(t, h1.env, name, 5)

	// One whole migration there and back: its length spreads the kills.
	r := startMigrate(h1, name, "h2")
	if code, said := r.wait(); code != 0 {
		t.Fatalf("lodge migrate %s h2: exit %d\n%s\nh2's serve:\n%s", name, code, said, h2.serveLogs())
	}
	// Each phase's length in it: a kill aims at a phase, then at a
	// moment of it, whatever the machine's speed in that round.
	usual := time.Since(r.began)
	var lengths []phaseAt
	var shown []string
	for i, p := range r.phases {
		end := usual
		if i+1 < len(r.phases) {
			end = r.phases[i+1].at
		}
		lengths = append(lengths, phaseAt{p.name, end - p.at})
		shown = append(shown, fmt.Sprintf("%s %v", p.name, (end-p.at).Round(time.Millisecond)))
	}
	t.Logf("a migration takes %v here: %s", usual.Round(time.Millisecond), strings.Join(shown, ", "))
	h2.must("migrate", name, "h1")
	gone(t, h2.env, name)

	// Rounds kill h2's serve until it was killed 10 times (a round whose
	// migration ended before its kill does not count), then two rounds
	// kill the source's lodge migrate.
	serveKills, sourceRound := 0, -1
	for round := 0; sourceRound < 1; round++ {
		serving := serveKills < 10
		if serving && round == 20 {
			t.Fatalf("h2's serve was killed in %d of 20 rounds only: the migrations ended before their kills", serveKills)
		}
		if !serving {
			sourceRound++
		}
		before := readCounter(t, h1.env, name)
		r := startMigrate(h1, name, "h2")
		var what string
		switch {
		case serving && round%4 == 3:
			// Right after the restore on h2, before h1 hears of it.
			if !restoredOn(h2, name, r) {
				what = "h2's serve to be killed once restored, but lodge migrate ended first"
				break
			}
			what = fmt.Sprintf("h2's serve killed once h2 restored it (phase %s)", r.current())
			warned := strings.Count(h2.serveLogs(), heldWarning)
			h2.killServe()
			serveKills++
			h2.startServe()
			// The restarted serve holds the restored copy (froze it, if
			// the killed one had not) before it answers h1's Abort: it
			// says so before "Serving on", but on stderr, whose pipe the
			// test reads apart from stdout's, so the line may come later.
			if !eventually(10*time.Second, func() bool { return strings.Count(h2.serveLogs(), heldWarning) > warned }) {
				t.Errorf("round %d: h2's restarted serve did not hold the restored %s:\n%s", round, name, h2.serveLogs())
			}
		case serving:
			aim := lengths[rng.Intn(len(lengths))]
			delay := time.Duration(rng.Int63n(int64(aim.at) + 1))
			if !r.untilPhase(aim.name) {
				what = fmt.Sprintf("h2's serve to be killed %v into %s, but lodge migrate ended first", delay.Round(time.Millisecond), aim.name)
				break
			}
			select {
			case <-r.done:
				what = fmt.Sprintf("h2's serve to be killed %v into %s, but lodge migrate ended first", delay.Round(time.Millisecond), aim.name)
			case <-time.After(delay):
				what = fmt.Sprintf("h2's serve killed %v into %s, at %v (phase %s)", delay.Round(time.Millisecond), aim.name, time.Since(r.began).Round(time.Millisecond), r.current())
				h2.killServe()
				serveKills++
				h2.startServe()
			}
		default:
			// The source's lodge migrate killed once h2 restored it
			// (the first: before it heard the answer, as far as it
			// goes), or once it says it commits (the second: CRIU has
			// killed its tree).
			var tree []int
			at := func() bool { return restoredOn(h2, name, r) }
			if sourceRound == 1 {
				at = func() bool {
					for !r.ended() && r.current() != "commit" {
						tree = append(tree, descendants(r.cmd.Process.Pid)...)
						time.Sleep(time.Millisecond)
					}
					return !r.ended()
				}
			}
			if !at() {
				what = "lodge migrate to be killed, but it ended first"
				break
			}
			tree = append(tree, descendants(r.cmd.Process.Pid)...)
			what = fmt.Sprintf("h1's lodge migrate killed (phase %s)", r.current())
			syscall.Kill(r.cmd.Process.Pid, syscall.SIGKILL)
			r.wait()
			h1.waitGone(tree) // its CRIU resumes the tree (nobody answered) or kills it
			h1.settleContainer(name)
		}
		code, said := r.wait()
		t.Logf("round %d: %s: exit %d\n%s", round, what, code, said)
		if !serving {
			onH1, onH2 := heldOrGone(h1, name), heldOrGone(h2, name)
			t.Logf("round %d: on h1 %s, on h2 %s", round, onH1, onH2)
			switch {
			case onH1 == "RUNNING" && (onH2 == "held" || onH2 == "gone"):
				h1.checkTruth(name, false)
				if onH2 == "held" {
					// A restarted serve keeps it held, and says so.
					h2.stopServe()
					h2.startServe()
					said := eventually(10*time.Second, func() bool { return strings.Contains(h2.serveLogs(), heldWarning) })
					if !said || heldOrGone(h2, name) != "held" {
						t.Errorf("round %d: h2's restarted serve does not keep %s held, or does not say so:\n%s", round, name, h2.serveLogs())
					}
					// Its source resumed and never aborted it: the
					// operator deletes the held copy there.
					h2.must("delete", "--force", name)
				}
				gone(t, h2.env, name)
			case (onH1 == "STOPPED" || onH1 == "gone") && (onH2 == "held" || onH2 == "RUNNING"):
				// The source's tree is gone. Held: nobody commits, and the
				// operator thaws the held copy there. Running: the commit
				// reached h2 before the kill. Either way the operator
				// removes what the killed lodge migrate left here.
				if onH2 == "held" {
					if i := h2.info(name); !strings.Contains(i.Migration, "lodge unfreeze "+name) {
						t.Errorf("round %d: info on h2 does not say the copy is held: %q", round, i.Migration)
					}
					if r := h2.run("unfreeze", name); r.code != 0 || !strings.Contains(r.stderr, "that migration is committed") {
						t.Fatalf("round %d: lodge unfreeze of the held copy on h2: %s", round, r)
					}
				}
				if h2.checkTruth(name, false) != "RUNNING" {
					t.Fatalf("round %d: the held copy on h2 does not run once thawed", round)
				}
				if _, err := os.Stat(filepath.Join(h2.root, "containers", name, "migration.json")); err == nil {
					t.Fatalf("round %d: the held copy on h2 still has its migration's marker once thawed: a late Abort would delete it", round)
				}
				if onH1 == "STOPPED" {
					h1.must("delete", "--force", name)
				}
				gone(t, h1.env, name)
				h2.must("migrate", name, "h1")
				gone(t, h2.env, name)
				h1.checkTruth(name, false)
			default:
				t.Fatalf("round %d: after lodge migrate was killed, %s is %s on h1 and %s on h2", round, name, onH1, onH2)
			}
			continue
		}
		if code == 0 {
			if !strings.Contains(said, "Migrated "+name) {
				t.Errorf("round %d: it migrated, and says:\n%s", round, said)
			}
			gone(t, h1.env, name)
			if h2.checkTruth(name, false) != "RUNNING" {
				t.Fatalf("round %d: migrated, and not running on h2", round)
			}
			if after := readCounter(t, h2.env, name); after < before {
				t.Fatalf("round %d: the counter went from %d to %d", round, before, after)
			}
			h2.must("exec", name, "--", "true")
			h2.must("migrate", name, "h1")
			gone(t, h2.env, name)
		} else {
			if !strings.Contains(said, "it keeps running here") {
				t.Errorf("round %d: the failure does not say it keeps running on h1:\n%s", round, said)
			}
			gone(t, h2.env, name)
		}
		if h1.checkTruth(name, false) != "RUNNING" {
			t.Fatalf("round %d: %s does not run on h1", round, name)
		}
		if after := readCounter(t, h1.env, name); after < before {
			t.Fatalf("round %d: the counter went from %d to %d", round, before, after)
		}
		h1.must("exec", name, "--", "true")
	}
}
