package config

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// CurrentHostVersion is the host config format this lodge understands.
const CurrentHostVersion = 1

// DefaultHostConfigPath is where the host config lives unless
// $LODGE_HOST_CONFIG names another file.
const DefaultHostConfigPath = "/etc/lodge/lodge.toml"

// Host id ranges. systemd documents 524288..1879048191 as the range for
// container ids (docs/UIDS-GIDS.md in systemd), in 65536-id blocks; staying
// inside it avoids clashing with users, DynamicUser= and systemd-nspawn.
const (
	defaultFirstID = 524288
	lastSystemdID  = 1879048191
	containerIDs   = 65536      // ids per container: the whole 16-bit range files use
	lastUsableID   = 4294967294 // 4294967295 is (uid_t)-1, "no id" to the kernel
	// DefaultCgroupParent is the cgroup, on every hierarchy, that holds
	// lodge's containers unless the host config says otherwise.
	DefaultCgroupParent = "/lodge"
)

// Host is lodge's host-wide configuration.
type Host struct {
	Version   int                          `toml:"version"`
	IDMap     HostIDMap                    `toml:"idmap"`
	Cgroup    HostCgroup                   `toml:"cgroup"`
	Images    HostImages                   `toml:"images"`
	Storage   HostStorage                  `toml:"storage"`
	Network   HostNetwork                  `toml:"network"`
	CRIU      HostCRIU                     `toml:"criu"`
	Templates map[string]map[string]string `toml:"templates"` // default template options, e.g. [templates.debian] release = "trixie"
	Defaults  map[string]string            `toml:"defaults"`  // container keys applied at create, e.g. "limits.pids" = "1024"

	source sourceFile // the file it was read from, for errors found later (CheckCgroupKeys)
}

// HostIDMap is the pool of host ids that containers' ids map to. Each
// container gets its own range of Size ids: First+n*Size for n < Count.
type HostIDMap struct {
	First uint32 `toml:"first"` // first host uid/gid handed to containers
	Size  uint32 `toml:"size"`  // ids per container; must be 65536, see checkIDSize
	Count uint32 `toml:"count"` // number of ranges; default: as many as fit below 1879048192
}

// HostCgroup says where lodge's cgroups live: the base, one absolute cgroup
// path per hierarchy, the same for every lodge process (CLI, monitors, a
// server) whatever cgroup it runs in. Containers go to BASE/NAME, monitors
// to BASE/.monitor/NAME.
type HostCgroup struct {
	Parent string `toml:"parent"` // the base on every hierarchy, e.g. "/lodge" or "/lodge.slice"
	// Parents overrides Parent per hierarchy, keyed as /proc/self/cgroup
	// names them: "memory", "cpu,cpuacct", "systemd" (name=systemd),
	// "unified" (cgroup2).
	Parents map[string]string `toml:"parents"`
	// Name was the base's name below the calling process's own cgroup
	// (version 1 files before cgroup.parent); kept only to say what to
	// write instead.
	Name string `toml:"name"`
}

// ParentOf returns the base on hierarchy key: its override, else Parent.
func (c HostCgroup) ParentOf(key string) string {
	if p, ok := c.Parents[key]; ok {
		return p
	}
	return c.Parent
}

// HostImages says where images live.
type HostImages struct {
	// Dir holds the template and image cache; "" means ROOT/images. Several
	// lodge roots can share one cache (a second "host" in tests, say).
	Dir string `toml:"dir"`
}

// HostStorage says which storage backend new containers get.
type HostStorage struct {
	// Backend is "auto" (or empty: the same), or a backend's name: "dir",
	// "overlay", "btrfs". auto picks btrfs when the root lives on btrfs,
	// else overlay where the kernel can mount it in a user namespace, else
	// dir. Existing containers keep the backend that made them.
	Backend string `toml:"backend"`
}

// HostNetwork holds host-wide settings of managed networks.
type HostNetwork struct {
	// Tag, when set, is put before every network's name in the kernel
	// ("TAG-NAME": the bridge's name and alias, the nftables tables), so
	// that a second lodge root on one machine (tests, a demo) has networks
	// of its own, its "default" included. Empty for the system's lodge.
	Tag string `toml:"tag"`
}

// HostCRIU says which CRIU checkpoints and restores use.
type HostCRIU struct {
	// Path is the criu binary (or a wrapper that execs it, keeping its
	// descriptors: lodge runs it as "criu swrk FD"); "" means the one make
	// deps installs, /usr/local/lib/lodge/criu/criu, else criu on PATH.
	// It must be CRIU 4.2 or newer.
	Path string `toml:"path"`
}

// AutoStorage is the storage.backend value that lets lodge choose.
const AutoStorage = "auto"

// DefaultHost returns the host config used when the file does not exist.
func DefaultHost() *Host {
	return &Host{
		Version: CurrentHostVersion,
		IDMap: HostIDMap{
			First: defaultFirstID,
			Size:  containerIDs,
			Count: defaultIDCount(defaultFirstID, containerIDs),
		},
		Cgroup: HostCgroup{Parent: DefaultCgroupParent},
	}
}

// defaultIDCount is how many ranges fit from first up to systemd's last
// container id; 0 if none do.
func defaultIDCount(first, size uint32) uint32 {
	if size == 0 || first > lastSystemdID {
		return 0
	}
	return (lastSystemdID - first + 1) / size
}

// HostConfigEnv names the environment variable that points lodge at another
// host config file (tests and second "hosts" on one machine use it).
const HostConfigEnv = "LODGE_HOST_CONFIG"

// HostConfigPath returns $LODGE_HOST_CONFIG if set, else DefaultHostConfigPath.
func HostConfigPath() string {
	if path := os.Getenv(HostConfigEnv); path != "" {
		return path
	}
	return DefaultHostConfigPath
}

// LoadHost reads the host config. A missing file is not an error: the host
// then runs with DefaultHost(). Decoding and errors are as strict as Load's.
func LoadHost(path string) (*Host, error) {
	text, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return DefaultHost(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read host config: %w", err)
	}
	return parseHost(sourceFile{path: path, text: string(text)})
}

func parseHost(file sourceFile) (*Host, error) {
	file, err := file.upgrade(CurrentHostVersion, hostMigrations)
	if err != nil {
		return nil, err
	}
	h := DefaultHost()
	meta, err := file.decodeStrict(h)
	if err != nil {
		return nil, err
	}
	// The default count depends on first, so recompute it unless given.
	if !meta.IsDefined("idmap", "count") {
		h.IDMap.Count = defaultIDCount(h.IDMap.First, h.IDMap.Size)
	}
	if err := h.Validate(); err != nil {
		return nil, file.locate(err)
	}
	h.source = file
	return h, nil
}

// Validate checks the host config and returns every problem, joined.
func (h *Host) Validate() error {
	return errors.Join(
		h.checkVersion(),
		h.checkIDFirst(),
		h.checkIDSize(),
		h.checkIDCount(),
		h.checkCgroupName(),
		h.checkCgroupParent(),
		h.checkImagesDir(),
		h.checkStorage(),
		h.checkNetworkTag(),
		h.checkCRIUPath(),
		h.checkDefaults(),
	)
}

func (h *Host) checkVersion() error {
	if h.Version != CurrentHostVersion {
		return keyErrorf("version", "%d is not supported; this lodge writes version = %d", h.Version, CurrentHostVersion)
	}
	return nil
}

func (h *Host) checkIDFirst() error {
	if h.IDMap.First < containerIDs {
		return keyErrorf("idmap.first", "%d would overlap the host's own ids 0..65535; use at least 65536, e.g. the default %d", h.IDMap.First, defaultFirstID)
	}
	return nil
}

// checkIDSize insists on 65536 ids per container: root filesystems keep
// their files' natural ids 0..65535 on disk and are shifted by an idmapped
// mount, so a container must own the whole 16-bit range to see them all.
func (h *Host) checkIDSize() error {
	if h.IDMap.Size != containerIDs {
		return keyErrorf("idmap.size", "%d is not supported; use %d, because root filesystems keep file ids 0..65535 and each container needs all of them", h.IDMap.Size, containerIDs)
	}
	return nil
}

func (h *Host) checkIDCount() error {
	m := h.IDMap
	last := uint64(m.First) + uint64(m.Size)*uint64(m.Count) - 1
	switch {
	case m.Count == 0:
		return keyErrorf("idmap.count", "is 0, so no container can start; set idmap.count, or lower idmap.first to leave room below %d", lastSystemdID+1)
	case last > lastUsableID:
		return keyErrorf("idmap.count", "%d ranges from %d end at id %d, past the last usable id %d; lower idmap.count or idmap.first", m.Count, m.First, last, uint64(lastUsableID))
	}
	return nil
}

// checkCgroupName explains the replaced cgroup.name: it was relative to
// the cgroup of whichever lodge process ran, which made a container's cgroup
// depend on the shell that started it.
func (h *Host) checkCgroupName() error {
	name := h.Cgroup.Name
	if name == "" {
		return nil
	}
	suggest := DefaultCgroupParent
	if cgroupNameRe().MatchString(name) && name != "." && name != ".." {
		suggest = "/" + name
	}
	return keyErrorf("cgroup.name", "was replaced by cgroup.parent, an absolute cgroup path that is the same whichever cgroup lodge runs from; "+
		"write parent = %q instead of name = %q under [cgroup] (containers then live in %s/NAME on every hierarchy)", suggest, name, suggest)
}

var cgroupNameRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9._-]+$`) })

// checkCgroupParent checks cgroup.parent and each cgroup.parents entry. The
// hierarchy keys are checked against the host's hierarchies when lodge
// detects them (CheckCgroupKeys).
func (h *Host) checkCgroupParent() error {
	errs := []error{checkCgroupPath("cgroup.parent", h.Cgroup.Parent)}
	for _, key := range slices.Sorted(maps.Keys(h.Cgroup.Parents)) {
		name := "cgroup.parents." + strconv.Quote(key)
		if !hierarchyKeyRe().MatchString(key) {
			errs = append(errs, keyErrorf(name, "%q is not a cgroup hierarchy key; use one as /proc/self/cgroup names it: \"memory\", \"cpu,cpuacct\", \"systemd\" (name=systemd) or \"unified\" (cgroup2)", key))
			continue
		}
		errs = append(errs, checkCgroupPath(name, h.Cgroup.Parents[key]))
	}
	return errors.Join(errs...)
}

// hierarchyKeyRe matches a hierarchy key: controller or hierarchy names
// joined by commas.
var hierarchyKeyRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$`) })

// checkCgroupPath insists on an absolute, clean cgroup path below a
// hierarchy's root: lodge never puts containers at the root itself, which
// belongs to the whole host.
func checkCgroupPath(key, p string) error {
	switch {
	case p == "":
		return keyErrorf(key, "is empty; use an absolute cgroup path like %q", DefaultCgroupParent)
	case !strings.HasPrefix(p, "/"):
		return keyErrorf(key, "%q is not an absolute cgroup path; write %q", p, path.Clean("/"+p))
	case slices.Contains(strings.Split(p, "/"), ".."):
		return keyErrorf(key, "%q contains \"..\"; write the cgroup path without it", p)
	case path.Clean(p) != p:
		return keyErrorf(key, "%q is not a clean path; write %q", p, path.Clean(p))
	case p == "/":
		return keyErrorf(key, "is the hierarchy's root, which belongs to the whole host; use a cgroup of lodge's own like %q", DefaultCgroupParent)
	case strings.ContainsAny(p, "\n\x00"):
		return keyErrorf(key, "%q contains a newline or NUL", p)
	case len(p) > 1024:
		return keyErrorf(key, "is %d bytes long; use a path of at most 1024", len(p))
	}
	return nil
}

// CheckCgroupKeys checks that every cgroup.parents key names one of the
// host's hierarchies (keys, as lodge detected them), suggesting the nearest.
// Errors name the host config's file and line when it was read from one.
func (h *Host) CheckCgroupKeys(keys []string) error {
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(h.Cgroup.Parents)) {
		if !slices.Contains(keys, key) {
			errs = append(errs, keyErrorf("cgroup.parents."+strconv.Quote(key), "%q names no cgroup hierarchy of this host%s; its hierarchies are %s",
				key, didYouMean(key, keys), strings.Join(keys, ", ")))
		}
	}
	err := errors.Join(errs...)
	if err != nil && h.source.path != "" {
		return h.source.locate(err)
	}
	return err
}

func (h *Host) checkImagesDir() error {
	if dir := h.Images.Dir; dir != "" && !strings.HasPrefix(dir, "/") {
		return keyErrorf("images.dir", "%q is not an absolute path; use one like /var/cache/lodge/images, or leave it out for ROOT/images", dir)
	}
	return nil
}

func (h *Host) checkCRIUPath() error {
	if p := h.CRIU.Path; p != "" && !strings.HasPrefix(p, "/") {
		return keyErrorf("criu.path", "%q is not an absolute path; use one like /usr/local/lib/lodge/criu/criu, or leave it out to use the CRIU make deps installs", p)
	}
	return nil
}

// storageBackends are the names storage.backend accepts besides auto; the
// storage package registers the same ones (config cannot import it).
var storageBackends = []string{"btrfs", "dir", "overlay"}

func (h *Host) checkStorage() error {
	b := h.Storage.Backend
	if b == "" || b == AutoStorage || slices.Contains(storageBackends, b) {
		return nil
	}
	return keyErrorf("storage.backend", "%q is not a storage backend; use %s, or %q to let lodge choose", b, strings.Join(storageBackends, ", "), AutoStorage)
}

// checkNetworkTag allows 1-6 of [a-z0-9]: no dash, so that "TAG-NAME"
// splits one way only.
func (h *Host) checkNetworkTag() error {
	tag := h.Network.Tag
	ok := len(tag) <= 6
	for _, r := range tag {
		ok = ok && (r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	}
	if !ok {
		return keyErrorf("network.tag", "%q must be 1-6 lower-case letters and digits (or empty)", tag)
	}
	return nil
}

func (h *Host) checkDefaults() error {
	_, err := h.DefaultContainer()
	return err
}

// DefaultContainer returns Default() with the host's [defaults] applied: the
// starting point of `lodge create` before its -c options.
func (h *Host) DefaultContainer() (*Container, error) {
	c := Default()
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(h.Defaults)) {
		if err := c.assign(name, h.Defaults[name]); err != nil {
			errs = append(errs, asDefaultsError(name, err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, relabelAsDefaults(c.Validate()))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// asDefaultsError files an error about a container key under the host's
// [defaults] table, so it points at the line that set it.
func asDefaultsError(name string, err error) error {
	var problem *keyError
	if errors.As(err, &problem) {
		err = problem.Err // the defaults key already names it
	}
	return &keyError{Key: "defaults." + strconv.Quote(name), Err: err}
}

// relabelAsDefaults applies asDefaultsError to each error of a Validate
// result.
func relabelAsDefaults(err error) error {
	var errs []error
	for _, err := range unjoin(err) {
		var problem *keyError
		if errors.As(err, &problem) {
			err = asDefaultsError(problem.Key, err)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// CgroupTOML renders a [cgroup] table with parent and per-hierarchy parents,
// for programs that write host configs (the tests, the benchmark).
func CgroupTOML(parent string, parents map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[cgroup]\nparent = %s\n", strconv.Quote(parent))
	if len(parents) > 0 {
		b.WriteString("[cgroup.parents]\n")
	}
	for _, key := range slices.Sorted(maps.Keys(parents)) {
		fmt.Fprintf(&b, "%s = %s\n", strconv.Quote(key), strconv.Quote(parents[key]))
	}
	return b.String()
}
