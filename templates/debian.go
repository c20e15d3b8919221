package templates

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Debian builds a Debian system with debootstrap, set up to boot as a
// container: systemd (or sysvinit) finds nothing it cannot do inside one.
func Debian() Template {
	return Template{
		Name:        "debian",
		Description: "Debian built by debootstrap (bookworm, trixie, ...), with systemd or sysvinit",
		// 2: procps by default; 3: systemd-resolved (names from the network's
		// DHCP); 4: ProtectHostname=no for every service (CRIU cannot dump the
		// nested UTS namespace logind, localed and timedated otherwise get).
		Revision: 4,
		Options: []Option{
			{Name: "release", Default: "bookworm", Doc: "Debian release (suite or codename): bookworm, trixie, ...", Check: checkWord("bookworm or trixie")},
			{Name: "mirror", Default: "http://deb.debian.org/debian", Doc: "Debian mirror to install from; apt in the container uses it too", Check: checkMirror},
			{Name: "variant", Default: "minbase", Doc: "debootstrap variant: minbase (required packages only) or standard (debootstrap's default set)", Check: checkOneOf("minbase", "standard")},
			{Name: "packages", Default: "", Doc: "extra packages, comma-separated, e.g. openssh-server,less", Check: checkPackages},
			{Name: "init", Default: "systemd", Doc: "init system: systemd or sysvinit", Check: checkOneOf("systemd", "sysvinit")},
		},
		Build:     buildDebian,
		Configure: ConfigureHostname,
	}
}

// debianInits are the packages each init option installs. dbus makes logind,
// hostnamectl and friends work; debootstrap installs no Recommends.
// systemd-resolved takes the DNS server and search domain networkd learns
// by DHCP, so that the other containers' names resolve.
var debianInits = map[string][]string{
	"systemd":  {"systemd-sysv", "dbus", "systemd-resolved"},
	"sysvinit": {"sysvinit-core"},
}

func buildDebian(ctx context.Context, b Build) error {
	args, err := debootstrapArgs(b.Options, b.Rootfs)
	if err != nil {
		return err
	}
	if _, err := exec.LookPath("debootstrap"); err != nil {
		return fmt.Errorf("the debian template needs debootstrap: apt-get install debootstrap (make deps does it)")
	}
	b.Report.Step("debootstrap %s from %s (this takes a minute or two)", b.Options["release"], b.Options["mirror"])
	if err := runDebootstrap(ctx, args, b); err != nil {
		return err
	}
	b.Report.Step("setting up %s for containers", b.Options["release"])
	return prepareDebian(b.Rootfs, b.Options)
}

// debianBase is installed whatever the init: procps gives free, top, ps
// and uptime, the first things people run on a new machine (and how they
// see the container's /proc views).
var debianBase = []string{"procps"}

func debootstrapArgs(opts map[string]string, rootfs string) ([]string, error) {
	initPackages, ok := debianInits[opts["init"]]
	if !ok {
		return nil, fmt.Errorf("option init=%q: use systemd or sysvinit", opts["init"])
	}
	include := append(slices.Clone(initPackages), debianBase...)
	for _, p := range strings.Split(opts["packages"], ",") {
		if p = strings.TrimSpace(p); p != "" {
			include = append(include, p)
		}
	}
	args := []string{"--include=" + strings.Join(include, ",")}
	switch opts["variant"] {
	case "minbase":
		args = append(args, "--variant=minbase")
	case "standard":
	default:
		return nil, fmt.Errorf("option variant=%q: use minbase or standard", opts["variant"])
	}
	// Checked when the options were resolved; checked again here because
	// these go on debootstrap's command line.
	if err := checkWord("bookworm")(opts["release"]); err != nil {
		return nil, fmt.Errorf("option release=%q: %w", opts["release"], err)
	}
	if err := checkMirror(opts["mirror"]); err != nil {
		return nil, fmt.Errorf("option mirror=%q: %w", opts["mirror"], err)
	}
	if err := checkPackages(opts["packages"]); err != nil {
		return nil, fmt.Errorf("option packages: %w", err)
	}
	return append(args, opts["release"], rootfs, opts["mirror"]), nil
}

// runDebootstrap runs debootstrap as pid 1 of its own pid and mount namespaces
// (util-linux unshare): the /proc and /sys it mounts in the target stay
// private, and if lodge dies (even by SIGKILL) the namespace's init dies with
// it (parent-death signals down the chain), taking dpkg and wget along.
func runDebootstrap(ctx context.Context, args []string, b Build) error {
	unshare := []string{"--mount", "--propagation", "private", "--pid", "--fork", "--kill-child", "--", "debootstrap"}
	cmd := exec.CommandContext(ctx, "unshare", append(unshare, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = cmd.Stdout
	fmt.Fprintf(b.Log, "$ unshare %s\n", strings.Join(append(unshare, args...), " "))
	err = runBound(cmd, func() error {
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start debootstrap: %w", err)
		}
		followDebootstrap(out, b)
		return cmd.Wait()
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("debootstrap failed: %w", err)
	}
	return nil
}

// followDebootstrap copies debootstrap's output to the log and turns its
// "I: Retrieving/Extracting/Unpacking/Configuring pkg" lines into progress:
// each package passes through those four stages.
func followDebootstrap(out io.Reader, b Build) {
	var done, total int64
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		line := lines.Text()
		fmt.Fprintln(b.Log, line)
		if total == 0 {
			total = debootstrapSteps(b.Rootfs)
		}
		stage, pkg, ok := debootstrapStage(line)
		if !ok {
			continue
		}
		done++
		b.Report.Progress(stage+" "+pkg, done, max(total, done))
	}
}

var debootstrapStages = []string{"Retrieving", "Extracting", "Unpacking", "Configuring"}

// debootstrapStage recognises "I: Retrieving libc6 2.36-9" and "I: Unpacking
// bash..." but not "I: Retrieving InRelease" or "I: Unpacking required packages...".
func debootstrapStage(line string) (stage, pkg string, ok bool) {
	fields := strings.Fields(strings.TrimPrefix(line, "I: "))
	if !strings.HasPrefix(line, "I: ") || len(fields) < 2 || !slices.Contains(debootstrapStages, fields[0]) {
		return "", "", false
	}
	pkg = strings.TrimSuffix(fields[1], "...")
	if slices.Contains([]string{"Release", "InRelease", "Packages", "required", "base", "the"}, pkg) {
		return "", "", false
	}
	return strings.ToLower(fields[0]), pkg, true
}

// debootstrapSteps is how many stage lines to expect: every package is
// retrieved, unpacked and configured, and the required ones are extracted
// first. It reads the package lists debootstrap keeps in the target once it
// has resolved dependencies; 0 until then.
func debootstrapSteps(rootfs string) int64 {
	count := func(list string) int64 {
		data, err := os.ReadFile(filepath.Join(rootfs, "debootstrap", list))
		if err != nil {
			return -1
		}
		return int64(len(strings.Fields(string(data))))
	}
	required, base := count("required"), count("base")
	if required < 0 || base < 0 {
		return 0
	}
	return 3*(required+base) + required
}
