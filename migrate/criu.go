package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	criu "github.com/checkpoint-restore/go-criu/v7"
	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"google.golang.org/protobuf/proto"
)

// MinCRIU is the oldest CRIU that works on this kernel (PITFALLS 24 in the
// design notes; README "Requirements"): Debian 12's 3.17 does not start on
// kernels this new ("vdso: Unexpected rt vDSO area bounds"), and 4.1.1 cannot
// dump a TCP or UDP socket on kernels from 6.16 (SO_PASSCRED).
const MinCRIU = 40200 // 4.2.0, as go-criu's GetCriuVersion reports (major*10000+minor*100+sublevel)

// DefaultCRIUPath is where make deps installs CRIU (.ci/install-criu): a
// wrapper that runs sid's criu through its own loader and libraries.
const DefaultCRIUPath = "/usr/local/lib/lodge/criu/criu"

// CRIU is a CRIU binary that answered lodge's version and feature requests.
type CRIU struct {
	Path     string // the criu binary (or wrapper) used
	Version  int    // e.g. 40201
	Features Features
}

// Features is what CRIU's feature check (its FEATURE_CHECK request) reports
// for this CRIU on this kernel.
type Features struct {
	// MemTrack: the kernel tracks dirty memory (soft-dirty), so iterative
	// pre-dumps are possible. Not on kernels without CONFIG_MEM_SOFT_DIRTY.
	MemTrack bool
	// LazyPages: restore can fault memory in on demand (userfaultfd).
	LazyPages bool
	// PidfdStore: CRIU can keep pidfds of dumped tasks between pre-dumps.
	PidfdStore bool
}

// VersionString formats a go-criu version number: 40201 -> "4.2.1", 31700 -> "3.17".
func VersionString(v int) string {
	s := fmt.Sprintf("%d.%d", v/10000, v/100%100)
	if v%100 != 0 {
		s += fmt.Sprintf(".%d", v%100)
	}
	return s
}

// String is "criu 4.2.1 at PATH".
func (c *CRIU) String() string {
	return fmt.Sprintf("criu %s at %s", VersionString(c.Version), c.Path)
}

// Client returns a go-criu client for this binary (criu.MakeCriu with SetCriuPath).
func (c *CRIU) Client() *criu.Criu {
	cl := criu.MakeCriu()
	cl.SetCriuPath(c.Path)
	return cl
}

// criuFound caches FindCRIU's checks per path for the life of the process.
// Only a CRIU that passed is cached: after a failure the user may fix it (run
// make deps) and a long-lived process then sees the fix on the next call.
var criuFound sync.Map // path -> *CRIU

// FindCRIU locates CRIU: configured (the host config's criu.path) if not "",
// else the known locations in order (DefaultCRIUPath, then criu on PATH), and
// checks its version and features once (cached per path in the process).
// Errors say what is wrong and what to do: missing, too old, or not
// runnable (with the error it gave).
func FindCRIU(configured string) (*CRIU, error) {
	if configured != "" {
		if _, err := os.Stat(configured); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("criu.path %s in the host config does not exist: run make deps and remove criu.path (lodge then uses %s), or set it to a CRIU %s or newer", configured, DefaultCRIUPath, VersionString(MinCRIU))
			}
			return nil, fmt.Errorf("criu.path in the host config: %w", err)
		}
		return checkCRIU(configured)
	}
	var candidates []string
	if isExecutable(DefaultCRIUPath) {
		candidates = append(candidates, DefaultCRIUPath)
	}
	if p, err := exec.LookPath("criu"); err == nil && p != DefaultCRIUPath {
		candidates = append(candidates, p)
	}
	if len(candidates) == 0 {
		return nil, fmt.Errorf("CRIU is not installed (no %s, no criu on PATH): lodge needs CRIU %s or newer for checkpoints; run make deps, or set criu.path in the host config", DefaultCRIUPath, VersionString(MinCRIU))
	}
	var first error
	for _, p := range candidates {
		c, err := checkCRIU(p)
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// checkCRIU asks the CRIU at path for its version (go-criu's GetCriuVersion)
// and features, or returns the cached answer.
func checkCRIU(path string) (*CRIU, error) {
	if c, ok := criuFound.Load(path); ok {
		return c.(*CRIU), nil
	}
	cl := criu.MakeCriu()
	cl.SetCriuPath(path)
	v, err := cl.GetCriuVersion()
	if err != nil {
		return nil, fmt.Errorf("%s does not answer as CRIU (its version request failed: %v): lodge needs CRIU %s or newer "+
			"(older ones, like Debian 12's 3.17, do not even start on this kernel); run make deps, or set criu.path in the host config",
			path, err, VersionString(MinCRIU))
	}
	if v < MinCRIU {
		return nil, fmt.Errorf("criu %s at %s is too old: lodge needs %s or newer (see README, Requirements); run make deps",
			VersionString(v), path, VersionString(MinCRIU))
	}
	f, err := featureCheck(path)
	if err != nil {
		return nil, fmt.Errorf("criu %s at %s: its feature check failed: %w", VersionString(v), path, err)
	}
	c := &CRIU{Path: path, Version: v, Features: f}
	actual, _ := criuFound.LoadOrStore(path, c)
	return actual.(*CRIU), nil
}

// swrkTimeout bounds a version or feature request: a binary that is not
// CRIU might never answer.
const swrkTimeout = 30 * time.Second

// featureCheck sends CRIU a FEATURE_CHECK request asking for every feature
// and returns what its response says. go-criu's FeatureCheck (v7.2.0)
// returns the request it was given instead of the response's features, so
// this speaks the same swrk RPC itself, with go-criu's message types.
func featureCheck(path string) (Features, error) {
	all := true
	req := &rpc.CriuReq{
		Type:     rpc.CriuReqType_FEATURE_CHECK.Enum(),
		Features: &rpc.CriuFeatures{MemTrack: &all, LazyPages: &all, PidfdStore: &all},
	}
	resp, err := swrkCall(path, req)
	if err != nil {
		return Features{}, err
	}
	if resp.GetType() != rpc.CriuReqType_FEATURE_CHECK {
		return Features{}, fmt.Errorf("answered a feature check with a %v response", resp.GetType())
	}
	f := resp.GetFeatures()
	return Features{MemTrack: f.GetMemTrack(), LazyPages: f.GetLazyPages(), PidfdStore: f.GetPidfdStore()}, nil
}

// swrkCall runs "PATH swrk 3" with one end of a SOCK_SEQPACKET pair as its
// fd 3, sends req and returns the one response, within swrkTimeout.
func swrkCall(path string, req *rpc.CriuReq) (*rpc.CriuResp, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, err
	}
	cln := os.NewFile(uintptr(fds[0]), "criu-swrk-client") // non-blocking: deadlines work
	srv := os.NewFile(uintptr(fds[1]), "criu-swrk-server")
	defer cln.Close()

	cmd := exec.Command(path, "swrk", "3")
	cmd.ExtraFiles = []*os.File{srv}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Start()
	srv.Close()
	if err != nil {
		return nil, err
	}
	resp, callErr := func() (*rpc.CriuResp, error) {
		if err := cln.SetDeadline(time.Now().Add(swrkTimeout)); err != nil {
			return nil, err
		}
		b, err := proto.Marshal(req)
		if err != nil {
			return nil, err
		}
		if _, err := cln.Write(b); err != nil {
			return nil, err
		}
		buf := make([]byte, 64<<10)
		n, err := cln.Read(buf)
		if err != nil {
			return nil, err
		}
		resp := &rpc.CriuResp{}
		if err := proto.Unmarshal(buf[:n], resp); err != nil {
			return nil, err
		}
		if !resp.GetSuccess() {
			return nil, fmt.Errorf("request failed: %s (errno %d)", resp.GetCrErrmsg(), resp.GetCrErrno())
		}
		return resp, nil
	}()
	cln.Close() // CRIU's swrk ends when its socket closes
	if callErr != nil && cmd.Process != nil {
		_ = cmd.Process.Kill() // it may be stuck, or not CRIU at all
	}
	waitErr := cmd.Wait()
	if callErr != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("%w (stderr: %s)", callErr, msg)
		}
		if waitErr != nil {
			return nil, fmt.Errorf("%w (%v)", callErr, waitErr)
		}
		return nil, callErr
	}
	return resp, nil
}
