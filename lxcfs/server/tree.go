package server

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"lodge/config"
	"lodge/lxcfs"
)

// The FUSE tree:
//
//	/proc/meminfo, cpuinfo, stat, uptime, loadavg, swaps, diskstats
//	/sys/devices/system/cpu/           online, possible, present rendered;
//	                                   cpuN for the caller's CPUs, renumbered;
//	                                   everything else passed through from the host
//	/containers/NAME/proc/..., sys/... the same, one copy per container
//
// Every answer depends on who asks, so the kernel caches no data and no
// attributes: files are opened with FOPEN_DIRECT_IO and attribute timeouts
// are 0. Only the names of the fixed nodes (proc, its files, the
// directories down to cpu) are cached, which saves a LOOKUP per open; the
// names under cpu depend on the caller and are looked up every time.
// A file's text is rendered at open and again when the reader starts over
// at offset 0 (top keeps /proc/meminfo open and rereads it), so a reader
// sees one consistent snapshot per pass however it reads.

// hostCPUDir is the host's directory behind lxcfs.CPUDir.
const hostCPUDir = "/sys/devices/system/cpu"

type rootNode struct {
	fs.Inode
	views *Views
}

var _ fs.NodeOnAdder = (*rootNode)(nil)

func (r *rootNode) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fixedDirAttr(out)
	return 0
}

var dirAttr = fs.StableAttr{Mode: syscall.S_IFDIR}

// fixedDir is a directory whose attributes never change, so the kernel may
// keep them: with default_permissions every path walk checks each
// directory's mode, which would otherwise cost a GETATTR per component (the
// monitor opens eight views by path at every start).
type fixedDir struct{ fs.Inode }

var _ fs.NodeGetattrer = (*fixedDir)(nil)

func (d *fixedDir) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fixedDirAttr(out)
	return 0
}

// fixedDirAttr is a fixed directory's attributes, cached for long.
func fixedDirAttr(out *fuse.AttrOut) {
	out.Mode = syscall.S_IFDIR | 0o555
	out.SetTimeout(time.Hour)
}

// OnAdd builds the tree: the views at the root (for host readers and
// health checks) and the containers directory.
func (r *rootNode) OnAdd(ctx context.Context) {
	addViews(ctx, &r.Inode, r.views)
	r.AddChild(lxcfs.ContainersDir, r.NewPersistentInode(ctx, &containersDir{views: r.views, trees: map[string]*fs.Inode{}}, dirAttr), false)
}

// addViews adds proc/* and sys/devices/system/cpu under parent.
func addViews(ctx context.Context, parent *fs.Inode, views *Views) {
	proc := parent.NewPersistentInode(ctx, &fixedDir{}, dirAttr)
	parent.AddChild("proc", proc, false)
	for _, name := range lxcfs.ProcFiles {
		file := parent.NewPersistentInode(ctx, &viewFile{views: views, name: name}, fs.StableAttr{Mode: syscall.S_IFREG})
		proc.AddChild(name, file, false)
	}
	parts := strings.Split(lxcfs.CPUDir, "/")
	for _, part := range parts[:len(parts)-1] {
		dir := parent.NewPersistentInode(ctx, &fixedDir{}, dirAttr)
		parent.AddChild(part, dir, false)
		parent = dir
	}
	cpu := parent.NewPersistentInode(ctx, &cpuDir{views: views}, dirAttr)
	parent.AddChild(parts[len(parts)-1], cpu, false)
}

// containersDir gives every container name its own copy of the tree, made
// on first lookup. The answers still follow the caller; what the copies
// separate is the kernel's page cache, which sendfile and splice read
// through (busybox cat): on one shared inode, a container could be handed
// the text another container's read had just cached.
type containersDir struct {
	fs.Inode
	views *Views

	mu    sync.Mutex
	trees map[string]*fs.Inode
}

var _ fs.NodeLookuper = (*containersDir)(nil)

func (d *containersDir) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fixedDirAttr(out)
	return 0
}

func (d *containersDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if config.ValidateName(name) != nil {
		return nil, syscall.ENOENT
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	tree, ok := d.trees[name]
	if !ok {
		d.pruneLocked()
		tree = d.NewPersistentInode(ctx, &fixedDir{}, dirAttr)
		addViews(ctx, tree, d.views)
		d.trees[name] = tree
	}
	out.Mode = syscall.S_IFDIR | 0o555
	return tree, 0
}

// pruneLocked drops the trees of containers that no longer run, as a new
// one is made: names come and go on a busy host, and the server must not
// grow with every name it ever served. A pruned tree still mounted
// somewhere keeps working (the kernel's references keep its nodes), and a
// container that runs again gets a fresh one.
func (d *containersDir) pruneLocked() {
	d.views.index.refresh()
	running := map[string]bool{}
	for _, c := range d.views.index.Running() {
		running[c.Name] = true
	}
	for name, tree := range d.trees {
		if running[name] {
			continue
		}
		d.RmChild(name)
		forgetTree(tree)
		delete(d.trees, name)
	}
}

// forgetTree lets go-fuse free a tree's nodes once the kernel forgets them.
func forgetTree(n *fs.Inode) {
	for _, child := range n.Children() {
		forgetTree(child)
	}
	n.ForgetPersistent()
}

// viewFile is a file whose text is rendered for the caller.
type viewFile struct {
	fs.Inode
	views *Views
	name  string // an lxcfs.ProcFiles entry, or online/possible/present
}

var (
	_ fs.NodeOpener    = (*viewFile)(nil)
	_ fs.NodeGetattrer = (*viewFile)(nil)
)

// Getattr reports the size of the caller's current text: programs that
// sendfile or splice (busybox cat) are served through the page cache up to
// the file size, and would read nothing from a file of size 0.
func (f *viewFile) Getattr(ctx context.Context, fh fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o444
	out.SetTimeout(0)
	if h, ok := fh.(*textHandle); ok {
		out.Size = uint64(len(h.text))
	} else if text, err := f.views.Render(callerPID(ctx), f.name); err == nil {
		out.Size = uint64(len(text))
	}
	return 0
}

func (f *viewFile) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&(syscall.O_WRONLY|syscall.O_RDWR) != 0 {
		return nil, 0, syscall.EACCES
	}
	text, err := f.views.Render(callerPID(ctx), f.name)
	if err != nil {
		return nil, 0, syscall.EIO
	}
	return &textHandle{file: f, text: text, at: time.Now()}, fuse.FOPEN_DIRECT_IO, 0
}

// textHandle serves a rendered text to one open file.
type textHandle struct {
	file *viewFile
	mu   sync.Mutex
	text []byte
	at   time.Time // when text was rendered
}

var (
	_ fs.FileReader  = (*textHandle)(nil)
	_ fs.FileFlusher = (*textHandle)(nil)
)

func (h *textHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if off == 0 && time.Since(h.at) >= CacheTTL {
		if text, err := h.file.views.Render(callerPID(ctx), h.file.name); err == nil {
			h.text, h.at = text, time.Now()
		}
	}
	if off >= int64(len(h.text)) {
		return fuse.ReadResultData(nil), 0
	}
	return fuse.ReadResultData(h.text[off:min(int64(len(h.text)), off+int64(len(dest)))]), 0
}

// Flush answers ENOSYS, which tells the kernel to send no FLUSH again: there
// is nothing to flush, and it saves a round trip per close.
func (h *textHandle) Flush(context.Context) syscall.Errno { return syscall.ENOSYS }

func callerPID(ctx context.Context) int {
	if c, ok := fuse.FromContext(ctx); ok {
		return int(c.Pid)
	}
	return 0
}

// cpuDir is /sys/devices/system/cpu as the caller should see it.
type cpuDir struct {
	fs.Inode
	views *Views
}

var (
	_ fs.NodeLookuper  = (*cpuDir)(nil)
	_ fs.NodeReaddirer = (*cpuDir)(nil)
	_ fs.NodeGetattrer = (*cpuDir)(nil)
)

var renderedCPULists = []string{"online", "possible", "present"}

func (d *cpuDir) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	fixedDirAttr(out) // its entries depend on the caller, its attributes do not
	return 0
}

func (d *cpuDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	out.SetEntryTimeout(0)
	out.SetAttrTimeout(0)
	for _, list := range renderedCPULists {
		if name == list {
			out.Mode = syscall.S_IFREG | 0o444
			return d.NewInode(ctx, &viewFile{views: d.views, name: name}, fs.StableAttr{Mode: syscall.S_IFREG}), 0
		}
	}
	host := filepath.Join(hostCPUDir, name)
	if n, ok := cpuNumber(name); ok {
		cpus := d.views.VisibleCPUs(callerPID(ctx))
		if n >= len(cpus) {
			return nil, syscall.ENOENT
		}
		host = filepath.Join(hostCPUDir, "cpu"+strconv.Itoa(cpus[n]))
	}
	return passthrough(ctx, &d.Inode, host, out)
}

func (d *cpuDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	entries, err := os.ReadDir(hostCPUDir)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	var list []fuse.DirEntry
	for _, e := range entries {
		if _, isCPU := cpuNumber(e.Name()); !isCPU {
			list = append(list, fuse.DirEntry{Name: e.Name(), Mode: uint32(e.Type())})
		}
	}
	for i := range d.views.VisibleCPUs(callerPID(ctx)) {
		list = append(list, fuse.DirEntry{Name: "cpu" + strconv.Itoa(i), Mode: syscall.S_IFDIR})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return fs.NewListDirStream(list), 0
}

// cpuNumber recognises "cpuN" (but not cpufreq, cpuidle).
func cpuNumber(name string) (int, bool) {
	digits, ok := strings.CutPrefix(name, "cpu")
	if !ok || digits == "" {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil
}

// passthrough returns a read-only view of a host file or directory.
func passthrough(ctx context.Context, parent *fs.Inode, host string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	var st syscall.Stat_t
	if err := syscall.Lstat(host, &st); err != nil {
		return nil, fs.ToErrno(err)
	}
	node, err := fs.NewLoopbackRoot(host)
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	out.Attr.FromStat(&st)
	return parent.NewInode(ctx, node, fs.StableAttr{Mode: st.Mode & syscall.S_IFMT}), 0
}
