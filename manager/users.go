package manager

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"lodge/rootfs"
)

// containerUser is a user inside a container, resolved from its /etc/passwd
// and /etc/group.
type containerUser struct {
	Name   string
	UID    uint32
	GID    uint32
	Groups []uint32
	Home   string
}

// maxContainerID is the highest id mapped in a container's user namespace.
const maxContainerID = 65535

// lookupUser resolves spec (NAME, UID, NAME:GROUP, UID:GID; "" is root) against
// the container's own account files, read without following any symlink out of
// the root filesystem.
func lookupUser(rootfsDir, spec string) (containerUser, error) {
	if spec == "" {
		spec = "root"
	}
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	passwd := readAccounts(rootfsDir, "/etc/passwd")
	groups := readAccounts(rootfsDir, "/etc/group")
	u, err := findUser(passwd, userPart)
	if err != nil {
		return u, err
	}
	if hasGroup {
		gid, err := findID(groups, groupPart, "group")
		if err != nil {
			return u, err
		}
		u.GID = gid
	}
	u.Groups = memberOf(groups, u.Name, u.GID)
	return u, nil
}

func findUser(passwd [][]string, spec string) (containerUser, error) {
	for _, f := range passwd {
		if len(f) < 6 || (f[0] != spec && f[2] != spec) {
			continue
		}
		uid, err1 := parseID(f[2])
		gid, err2 := parseID(f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		home := f[5]
		if home == "" {
			home = "/"
		}
		return containerUser{Name: f[0], UID: uid, GID: gid, Home: home}, nil
	}
	uid, err := parseID(spec)
	if err != nil {
		return containerUser{}, fmt.Errorf("--user %q: no such user in the container's /etc/passwd", spec)
	}
	return containerUser{Name: spec, UID: uid, GID: 0, Home: "/"}, nil
}

func findID(entries [][]string, spec, kind string) (uint32, error) {
	for _, f := range entries {
		if len(f) >= 3 && f[0] == spec {
			return parseID(f[2])
		}
	}
	id, err := parseID(spec)
	if err != nil {
		return 0, fmt.Errorf("no such %s %q in the container", kind, spec)
	}
	return id, nil
}

// memberOf lists the supplementary groups of user: the ones naming it as a member.
func memberOf(groups [][]string, user string, primary uint32) []uint32 {
	ids := []uint32{primary}
	for _, f := range groups {
		if len(f) < 4 {
			continue
		}
		for _, member := range strings.Split(f[3], ",") {
			if member != user {
				continue
			}
			if gid, err := parseID(f[2]); err == nil && gid != primary {
				ids = append(ids, gid)
			}
		}
	}
	return ids
}

func parseID(s string) (uint32, error) {
	id, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, err
	}
	if id > maxContainerID {
		return 0, fmt.Errorf("id %d is not mapped in the container (0-%d)", id, maxContainerID)
	}
	return uint32(id), nil
}

// readAccounts reads a colon-separated account file of the container; a missing
// or unreadable file reads as empty (numeric ids still work).
func readAccounts(rootfsDir, path string) [][]string {
	f, err := rootfs.OpenInRoot(rootfsDir, path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var entries [][]string
	scanner := bufio.NewScanner(io.LimitReader(f, 16<<20))
	for scanner.Scan() {
		line := scanner.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		entries = append(entries, strings.Split(line, ":"))
	}
	return entries
}
