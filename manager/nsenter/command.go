// Package nsenter starts lodge's C helper, lodge-nsexec (cmd/lodge-nsexec), which
// works before any Go runtime starts: it runs commands inside a running
// container's namespaces (a Go process cannot join user or mount namespaces),
// and it starts a container's first process in the container's v1 cgroups
// without the cost of a process migration.
package nsenter

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// AllNamespaces are the namespaces a command joins: every one a container has.
const AllNamespaces = unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID |
	unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP |
	unix.CLONE_NEWTIME

// Spec says what to run in a container and as whom.
type Spec struct {
	Init        *os.File // pidfd of the container's init; its namespaces are joined
	Namespaces  int      // namespaces to join (AllNamespaces)
	CgroupTasks []string // v1 "tasks" files of the cgroups to join (see cgroup.Placement)
	Cgroup2     string   // cgroup2 directory to create the command in; "" if none
	UID, GID    uint32   // credentials inside the container
	Groups      []uint32 // supplementary groups inside the container
	Cwd         string   // working directory inside the container
	CwdIsHome   bool     // Cwd is just the user's home: fall back to / if it is missing
	Env         []string // the command's whole environment
	Args        []string // the command and its arguments
	PtySocket   *os.File // if set, a pty is made in the container and its master sent here
}

// Fixed descriptor numbers in the helper: ExtraFiles start at 3.
const (
	pidfdFD     = 3
	ptySocketFD = 4
)

// HelperName is the helper's file name; it is looked up next to the lodge binary.
const HelperName = "lodge-nsexec"

// FindHelper returns the path of lodge-nsexec next to the lodge binary at self,
// or on $PATH.
func FindHelper(self string) (string, error) {
	path := filepath.Join(filepath.Dir(self), HelperName)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if path, err := exec.LookPath(HelperName); err == nil {
		return path, nil
	}
	return "", fmt.Errorf("%s is missing: lodge exec needs it next to %s or on $PATH (make build builds both)", HelperName, self)
}

// Command returns the process that runs spec.Args in the container through the
// helper. Its exit status is the command's (see nsexec.c for the reserved codes).
func Command(helper string, spec Spec) *exec.Cmd {
	cmd := exec.Command(helper, spec.Args...)
	cmd.Args[0] = "lodge-exec"
	cmd.Env = append(append([]string{}, spec.Env...), helperEnv(spec)...)
	cmd.ExtraFiles = []*os.File{spec.Init}
	if spec.PtySocket != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, spec.PtySocket)
	}
	return cmd
}

func helperEnv(spec Spec) []string {
	env := []string{
		"_LODGE_NSEXEC=1",
		"_LODGE_NSEXEC_PIDFD=" + strconv.Itoa(pidfdFD),
		"_LODGE_NSEXEC_NS=" + strconv.Itoa(spec.Namespaces),
		"_LODGE_TASKS=" + strings.Join(spec.CgroupTasks, "\n"),
		"_LODGE_CGROUP2=" + spec.Cgroup2,
		"_LODGE_NSEXEC_UID=" + strconv.FormatUint(uint64(spec.UID), 10),
		"_LODGE_NSEXEC_GID=" + strconv.FormatUint(uint64(spec.GID), 10),
		"_LODGE_NSEXEC_GROUPS=" + joinIDs(spec.Groups),
		"_LODGE_NSEXEC_CWD=" + spec.Cwd,
	}
	if spec.CwdIsHome {
		env = append(env, "_LODGE_NSEXEC_CWD_SOFT=1")
	}
	if spec.PtySocket != nil {
		env = append(env, "_LODGE_NSEXEC_PTY="+strconv.Itoa(ptySocketFD))
	}
	return env
}

func joinIDs(ids []uint32) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(uint64(id), 10)
	}
	return strings.Join(parts, ",")
}

// Exit statuses reserved by the helper, as documented in nsexec.c.
const (
	ExitHelperFailed = 125
	ExitCannotRun    = 126
	ExitNotFound     = 127
)

// InitStub returns the environment that makes the helper join the v1 cgroups
// listed in tasks and then execute the binary open at descriptor exeFD (with
// the helper's own argv): how the monitor starts a container's first process.
func InitStub(exeFD int, tasks []string) []string {
	return []string{"_LODGE_INITSTUB=" + strconv.Itoa(exeFD), "_LODGE_TASKS=" + strings.Join(tasks, "\n")}
}
