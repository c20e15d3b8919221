package migrate

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"google.golang.org/protobuf/proto"

	"lodge/internal/testreq"
)

// fakeCRIUEnv makes the test binary, run as "BIN swrk FD", answer a VERSION
// request as a CRIU of the version in it (e.g. "3.17.1"), like Debian 12's.
const fakeCRIUEnv = "LODGE_MIGRATE_TEST_FAKE_CRIU"

func fakeCRIU(version string) int {
	var major, minor, sub int32
	if _, err := fmt.Sscanf(version, "%d.%d.%d", &major, &minor, &sub); err != nil {
		fmt.Fprintln(os.Stderr, "fake criu:", err)
		return 1
	}
	var fd int
	if _, err := fmt.Sscan(os.Args[2], &fd); err != nil {
		return 1
	}
	sk := os.NewFile(uintptr(fd), "swrk")
	buf := make([]byte, 4096)
	n, err := sk.Read(buf)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake criu:", err)
		return 1
	}
	req := &rpc.CriuReq{}
	if err := proto.Unmarshal(buf[:n], req); err != nil || req.GetType() != rpc.CriuReqType_VERSION {
		fmt.Fprintln(os.Stderr, "fake criu: not a version request:", err)
		return 1
	}
	resp := &rpc.CriuResp{
		Type:    rpc.CriuReqType_VERSION.Enum(),
		Success: proto.Bool(true),
		Version: &rpc.CriuVersion{MajorNumber: &major, MinorNumber: &minor, Sublevel: &sub},
	}
	b, _ := proto.Marshal(resp)
	if _, err := sk.Write(b); err != nil {
		return 1
	}
	return 0
}

func TestVersionString(t *testing.T) {
	for v, want := range map[int]string{40201: "4.2.1", 40200: "4.2", 31701: "3.17.1", 31700: "3.17"} {
		if got := VersionString(v); got != want {
			t.Errorf("VersionString(%d) = %q, want %q", v, got, want)
		}
	}
}

// findInstalled returns the CRIU make deps installs, or skips for "criu".
func findInstalled(t *testing.T) *CRIU {
	t.Helper()
	if testing.Short() {
		t.Skip("runs CRIU (-short)")
	}
	c, err := FindCRIU("")
	if err != nil {
		testreq.Skipf(t, "criu", "no usable CRIU (make deps installs one): %v", err)
	}
	return c
}

func TestFindCRIU(t *testing.T) {
	c := findInstalled(t)
	if c.Version < MinCRIU {
		t.Fatalf("FindCRIU found %s, older than %d", c, MinCRIU)
	}
	// The swrk RPC's own feature answer: soft-dirty tracking needs
	// CONFIG_MEM_SOFT_DIRTY, which this kernel may lack; only log it.
	f, err := c.CheckFeatures()
	if err != nil {
		t.Fatalf("CheckFeatures: %v", err)
	}
	t.Logf("%s, features %+v", c, f)
	again, err := FindCRIU(c.Path)
	if err != nil || again != c {
		t.Errorf("FindCRIU(%q) again = %v, %v; want the cached %p", c.Path, again, err, c)
	}
	if v, err := c.Client().GetCriuVersion(); err != nil || v != c.Version {
		t.Errorf("Client().GetCriuVersion() = %d, %v; want %d", v, err, c.Version)
	}
}

// TestFindCRIUTooOld: a CRIU that answers 3.17.1 (Debian 12's) is refused
// with the version, the path and what to do.
func TestFindCRIUTooOld(t *testing.T) {
	t.Setenv(fakeCRIUEnv, "3.17.1")
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	_, err = FindCRIU(bin)
	want := "criu 3.17.1 at " + bin + " is too old: lodge needs 4.2 or newer (see README, Requirements); run make deps"
	if err == nil || err.Error() != want {
		t.Fatalf("FindCRIU(fake 3.17.1) = %v\nwant %s", err, want)
	}
}

func TestFindCRIUErrors(t *testing.T) {
	_, err := FindCRIU("/nonexistent/criu")
	want := "criu.path /nonexistent/criu in the host config does not exist: run make deps and remove criu.path (lodge then uses /usr/local/lib/lodge/criu/criu), or set it to a CRIU 4.2 or newer"
	if err == nil || err.Error() != want {
		t.Errorf("FindCRIU(missing) = %v\nwant %s", err, want)
	}
	// A binary that is not CRIU: its swrk "version request" fails.
	_, err = FindCRIU("/bin/true")
	if err == nil || !strings.HasPrefix(err.Error(), "/bin/true does not answer as CRIU (its version request failed: ") ||
		!strings.HasSuffix(err.Error(), "): lodge needs CRIU 4.2 or newer (older ones, like Debian 12's 3.17, do not even start on this kernel); run make deps, or set criu.path in the host config") {
		t.Errorf("FindCRIU(/bin/true) = %v", err)
	}
}

// TestCRIUDumpAgreesWithPreflight dumps (leaving it running) a plain process
// the preflight passes and one it refuses for io_uring, through Client()
// and the installed CRIU: the first dump succeeds, the second fails. This
// also checks that the wrapper keeps go-criu's swrk descriptor.
func TestCRIUDumpAgreesWithPreflight(t *testing.T) {
	needRoot(t)
	c := findInstalled(t)
	for _, tt := range []struct {
		mode   string
		dumpOK bool
	}{{"plain", true}, {"io_uring", false}} {
		t.Run(tt.mode, func(t *testing.T) {
			pid := startHolderIn(t, tt.mode, &syscall.SysProcAttr{Setsid: true})
			bs, err := Preflight(pid, []int{pid}, c)
			if err != nil || (len(bs) == 0) != tt.dumpOK {
				t.Fatalf("Preflight = %v, %v", bs, err)
			}
			dir := t.TempDir()
			d, err := os.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			err = c.Client().Dump(&rpc.CriuOpts{
				ImagesDirFd:  proto.Int32(int32(d.Fd())),
				Pid:          proto.Int32(int32(pid)),
				LeaveRunning: proto.Bool(true),
				LogLevel:     proto.Int32(4),
				LogFile:      proto.String("dump.log"),
			}, nil)
			if (err == nil) != tt.dumpOK {
				log, _ := os.ReadFile(dir + "/dump.log")
				t.Fatalf("Dump = %v (want success %v); dump.log:\n%s", err, tt.dumpOK, tailLines(string(log), 15))
			}
			if err != nil {
				log, _ := os.ReadFile(dir + "/dump.log")
				t.Logf("CRIU refused as the preflight said: %v\n%s", err, errorLines(string(log)))
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				t.Fatalf("the process did not keep running: %v", err)
			}
		})
	}
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func errorLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "Error") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
