package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"sync"
	"time"

	criu "github.com/checkpoint-restore/go-criu/v7"
	"github.com/checkpoint-restore/go-criu/v7/rpc"
)

// MinCRIU is the oldest CRIU that works on this kernel (PITFALLS 24 in the
// design notes; README "Requirements"): Debian 12's 3.17 does not start on
// kernels this new ("vdso: Unexpected rt vDSO area bounds"), and 4.1.1 cannot
// dump a TCP or UDP socket on kernels from 6.16 (SO_PASSCRED).
const MinCRIU = 40200 // 4.2.0, as go-criu's GetCriuVersion reports (major*10000+minor*100+sublevel)

// DefaultCRIUPath is where make deps installs CRIU (.ci/install-criu): a
// wrapper that runs sid's criu through its own loader and libraries.
const DefaultCRIUPath = "/usr/local/lib/lodge/criu/criu"

// CRIU is a CRIU binary that answered lodge's version request.
type CRIU struct {
	Path    string // the criu binary (or wrapper) used
	Version int    // e.g. 40201

	features     Features // CheckFeatures' answer, once asked
	featuresErr  error
	featuresOnce sync.Once
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

// checkCRIU asks the CRIU at path for its version, or returns the cached
// answer. Only the version: the feature check costs a start of criu that
// probes the kernel (about 60 ms more per checkpoint and restore), and only
// the choice of a migration mode needs it (CheckFeatures).
func checkCRIU(path string) (*CRIU, error) {
	if c, ok := criuFound.Load(path); ok {
		return c.(*CRIU), nil
	}
	resps, err := swrkCall(path, &rpc.CriuReq{Type: rpc.CriuReqType_VERSION.Enum()})
	if err == nil && (len(resps) == 0 || resps[0].GetType() != rpc.CriuReqType_VERSION) {
		err = errors.New("no version response")
	}
	if err != nil {
		return nil, fmt.Errorf("%s does not answer as CRIU (its version request failed: %v): lodge needs CRIU %s or newer "+
			"(older ones, like Debian 12's 3.17, do not even start on this kernel); run make deps, or set criu.path in the host config",
			path, err, VersionString(MinCRIU))
	}
	v := versionOf(resps[0].GetVersion())
	if v < MinCRIU {
		return nil, fmt.Errorf("criu %s at %s is too old: lodge needs %s or newer (see README, Requirements); run make deps",
			VersionString(v), path, VersionString(MinCRIU))
	}
	c := &CRIU{Path: path, Version: v}
	actual, _ := criuFound.LoadOrStore(path, c)
	return actual.(*CRIU), nil
}

// CheckFeatures asks CRIU's feature check (its FEATURE_CHECK request) what
// this CRIU can do on this kernel, once per CRIU value.
func (c *CRIU) CheckFeatures() (Features, error) {
	c.featuresOnce.Do(func() {
		yes := true
		resps, err := swrkCall(c.Path, &rpc.CriuReq{Type: rpc.CriuReqType_FEATURE_CHECK.Enum(),
			Features: &rpc.CriuFeatures{MemTrack: &yes, LazyPages: &yes, PidfdStore: &yes}})
		if err == nil && (len(resps) == 0 || resps[0].GetType() != rpc.CriuReqType_FEATURE_CHECK) {
			err = errors.New("no feature check response")
		}
		if err != nil {
			c.featuresErr = fmt.Errorf("%s: its feature check failed: %w", c, err)
			return
		}
		f := resps[0].GetFeatures()
		c.features = Features{MemTrack: f.GetMemTrack(), LazyPages: f.GetLazyPages(), PidfdStore: f.GetPidfdStore()}
	})
	return c.features, c.featuresErr
}

// versionOf numbers a VERSION response as go-criu's GetCriuVersion does:
// major*10000 + minor*100 + sublevel, and a build from git counts as the
// next minor release.
func versionOf(v *rpc.CriuVersion) int {
	n := int(v.GetMajorNumber())*10000 + int(v.GetMinorNumber())*100 + int(v.GetSublevel())
	if v.GetGitid() != "" {
		n = n - n%100 + 100
	}
	return n
}

// swrkTimeout bounds one session of requests: a binary that is not CRIU
// might never answer.
const swrkTimeout = 30 * time.Second

// swrkCall sends reqs in turn to one "criu swrk" at path (all but the last
// with keep_open), within swrkTimeout. It returns the successful responses,
// up to the first failure, and that failure.
func swrkCall(path string, reqs ...*rpc.CriuReq) ([]*rpc.CriuResp, error) {
	s, err := startSwrk(path, nil, nil)
	if err != nil {
		return nil, err
	}
	var resps []*rpc.CriuResp
	callErr := func() error {
		if err := s.conn.SetDeadline(time.Now().Add(swrkTimeout)); err != nil {
			return err
		}
		for _, req := range reqs {
			resp, err := s.call(req)
			if err != nil {
				return err
			}
			resps = append(resps, resp)
		}
		return nil
	}()
	return resps, s.finish(callErr, true)
}
