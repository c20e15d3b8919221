// Command lodge-bench measures lodge side by side with LXC on this machine
// and writes the results, as ratios, to a Markdown report (docs/benchmarks.md
// via `sudo make bench`).
//
// It drives both managers through their command-line tools, as a user
// would: a busybox container each, unprivileged, on an idmapped rootfs.
// Each benchmark group lives in its own file and is listed in groups();
// runtime.go is what a group can ask of lodge and LXC.
//
// It exits non-zero only when the benchmark itself could not run; targets
// that are missed are reported, not failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

type options struct {
	lodge               string        // the lodge binary under test
	out                 string        // the Markdown report; "" to skip
	n                   int           // repetitions for start, forced stop, exec
	stopN               int           // repetitions for graceful stop
	k                   int           // containers per runtime for memory
	memRounds           int           // memory rounds
	settle              time.Duration // pause between steps
	only                string        // comma-separated group names
	procread            string        // the reader binary for the views group
	viewsRounds, viewsK int           // views: samples per row, containers for memory
	netRounds           int           // network: rounds of iperf3 and ping
	netTime             time.Duration // network: one iperf3 run
	pingCount           int           // network: pings per round
	memhog              string        // checkpoint: the memory holder copied into containers
	ckptRounds          int           // checkpoint: rounds per case (idle, Debian, 64 and 256 MiB)
	ckptBigRounds       int           // checkpoint: rounds with 1 GiB
	migRounds           int           // migration: rounds per case, per runtime
	densityMax          int           // density: the most containers running per runtime
	densityLXCMax       int           // density: the most LXC containers running
	densityRounds       int           // density: samples per row
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("lodge-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.lodge, "lodge", "bin/lodge", "the lodge binary to measure (lodge-helper next to it)")
	fs.StringVar(&o.out, "out", "", "write the Markdown report here (e.g. docs/benchmarks.md)")
	fs.IntVar(&o.n, "n", 30, "repetitions of start, forced stop and exec, per runtime")
	fs.IntVar(&o.stopN, "stop-n", 5, "repetitions of the graceful stop (about 2 s each), per runtime")
	fs.IntVar(&o.k, "k", 10, "containers per runtime for the memory measurement")
	fs.IntVar(&o.memRounds, "mem-rounds", 3, "rounds of the memory measurement")
	fs.DurationVar(&o.settle, "settle", 100*time.Millisecond, "untimed pause between steps")
	fs.StringVar(&o.only, "only", "", "run only these groups (comma-separated: start, exec, stop, memory, debian, views, storage, network, freeze, checkpoint, migration, density)")
	fs.StringVar(&o.procread, "procread", "bin/lodge-procread", "the reader the views group copies into containers (make bench builds it)")
	fs.IntVar(&o.viewsRounds, "views-rounds", 5, "samples per views row, per runtime")
	fs.IntVar(&o.viewsK, "views-k", 50, "containers per runtime for the views servers' memory")
	fs.IntVar(&o.netRounds, "net-rounds", 10, "network: rounds of iperf3 and ping, per subject")
	fs.DurationVar(&o.netTime, "net-time", 2*time.Second, "network: length of one iperf3 run (whole seconds)")
	fs.IntVar(&o.pingCount, "ping-count", 200, "network: pings per round, 10 ms apart")
	fs.StringVar(&o.memhog, "memhog", "bin/lodge-memhog", "checkpoint: the program that holds touched memory in containers (make bench builds it)")
	fs.IntVar(&o.ckptRounds, "ckpt-rounds", 5, "checkpoint: rounds of checkpoint and restore per case, per runtime (Debian: at most 3)")
	fs.IntVar(&o.ckptBigRounds, "ckpt-big-rounds", 2, "checkpoint: rounds with 1 GiB of touched memory, per runtime")
	fs.IntVar(&o.migRounds, "mig-rounds", 5, "migration: rounds of migration per case, per runtime (after one untimed round)")
	fs.IntVar(&o.densityMax, "density-max", 500, "density: the most busybox containers running per runtime (measured at 1, 10, 100 below it, and it)")
	fs.IntVar(&o.densityLXCMax, "density-lxc-max", 0, "density: the most LXC containers running (0: as many as -density-max)")
	fs.IntVar(&o.densityRounds, "density-rounds", 10, "density: samples of list, start and exec per count, per runtime")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if o.n < 1 || o.stopN < 1 || o.k < 1 || o.memRounds < 1 || o.viewsRounds < 1 || o.viewsK < 1 ||
		o.netRounds < 1 || o.netTime < time.Second || o.pingCount < 1 || o.ckptRounds < 1 || o.ckptBigRounds < 1 || o.migRounds < 1 ||
		o.densityMax < 2 || o.densityLXCMax < 0 || o.densityRounds < 1 {
		return o, errors.New("-n, -stop-n, -k, -mem-rounds, -views-rounds, -views-k, -net-rounds, -ping-count, -ckpt-rounds, -ckpt-big-rounds, -mig-rounds and -density-rounds must be at least 1, -density-max at least 2, -density-lxc-max at least 0, -net-time at least 1s")
	}
	if o.densityLXCMax == 0 {
		o.densityLXCMax = o.densityMax
	}
	if o.k > 1000 {
		return o, errors.New("-k: at most 1000 containers")
	}
	if o.densityMax > 2000 {
		return o, errors.New("-density-max: at most 2000 containers")
	}
	return o, nil
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	opts, err := parseFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lodge-bench: %v\n", err)
		return 2
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "lodge-bench: needs root (lodge and LXC create namespaces, cgroups and mounts): sudo make bench")
		return 1
	}
	if err := closeInheritedOnExec(); err != nil {
		fmt.Fprintf(os.Stderr, "lodge-bench: %v\n", err)
		return 1
	}
	selected, err := selectGroups(opts.only)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lodge-bench: %v\n", err)
		return 2
	}
	// Ctrl-C, SIGTERM and SIGHUP end the run; the clean-up always runs.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	code := measure(ctx, opts, selected)
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "lodge-bench: interrupted")
		return 130
	}
	return code
}

// measure prepares, runs the groups, reports and cleans up.
func measure(ctx context.Context, opts options, selected []group) int {
	began, loadBefore := time.Now(), loadAverage()
	b, err := newBench(ctx, opts)
	defer func() {
		b.logf("cleaning up")
		if err := b.cleanup(); err != nil {
			fmt.Fprintf(os.Stderr, "lodge-bench: clean-up incomplete: %v\n", err)
		}
	}()
	if err != nil {
		fmt.Fprintf(os.Stderr, "lodge-bench: the benchmark cannot run: %v\n", err)
		if opts.out != "" && ctx.Err() == nil {
			m := describeMachine(b)
			m.Duration = time.Since(began)
			os.WriteFile(opts.out, []byte(failureDocument(m, err)), 0o644)
		}
		return 1
	}
	var results []*groupResult
	failed := false
	for _, g := range selected {
		b.logf("running %s", g.Title)
		res, err := g.Run(b)
		if res == nil {
			res = &groupResult{}
		}
		res.Title, res.Err = g.Title, err
		results = append(results, res)
		if err != nil {
			failed = true
			fmt.Fprintf(os.Stderr, "lodge-bench: %s: %v\n", g.Title, err)
			if ctx.Err() != nil {
				return 1
			}
		}
	}
	m := describeMachine(b)
	m.Duration = time.Since(began)
	m.Load = loadBefore + " → " + loadAverage()
	if opts.out != "" {
		if err := os.WriteFile(opts.out, []byte(document(b, m, results)), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "lodge-bench: %v\n", err)
			return 1
		}
	}
	fmt.Print(terminalSummary(results, opts.out))
	if failed {
		return 1
	}
	return 0
}
