package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"lodge/internal/atomicfile"
)

// Backend makes, copies, snapshots and deletes container root filesystems.
// Every method keeps the package's contract (see the package documentation):
// interrupted operations leave the old state or the complete new one, and
// nothing is ever chowned to shift ids.
type Backend interface {
	// Name is the backend's registered name, as recorded in storage.json.
	Name() string
	// Create makes a container's root filesystem at dst from the image's
	// root filesystem directory image (read only: never changed).
	Create(ctx context.Context, image, dst string, opts Options) error
	// Clone copies the root filesystem at src to dst: an independent full
	// copy, or with opts.CopyOnWrite one that shares unchanged data with src
	// (ErrNoCopyOnWrite when the backend or filesystem cannot).
	Clone(ctx context.Context, src, dst string, opts Options) error
	// Snapshot records src's current tree at snap, sharing data where the
	// backend can. The caller freezes a running container around it.
	Snapshot(ctx context.Context, src, snap string, opts Options) error
	// Restore replaces the tree at dst by the snapshot at snap, in one step;
	// snap stays, and so do all other snapshots.
	Restore(ctx context.Context, snap, dst string, opts Options) error
	// Delete removes a root filesystem or a snapshot. A missing path is not
	// an error (a retried delete succeeds).
	Delete(ctx context.Context, path string) error
	// Usage reports the disk space and inodes the tree at path uses.
	Usage(ctx context.Context, path string) (Usage, error)
	// SetQuota limits the tree at path to bytes (0 removes the limit), or
	// returns a *QuotaError saying why the backend cannot enforce it.
	SetQuota(ctx context.Context, path string, bytes int64) error
}

// Options tune one operation.
type Options struct {
	// CopyOnWrite asks Clone for a copy that shares data with its source.
	CopyOnWrite bool
	// Progress, when set, is called after every entry copied, from the
	// copying goroutines but one call at a time: keep it quick, and
	// throttle what it shows (manager shows one line per percent).
	Progress func(Progress)
	// Workers bounds the files copied at once (0: a default for the host).
	Workers int
	// Live says the source belongs to a running container (frozen by the
	// caller for the call): the backend must copy what it needs and must
	// not move or change the source, which keeps being written after the
	// call. Without Live the caller holds the container stopped and locked,
	// and a backend may rearrange the source's layout (overlay freezes the
	// upper layer into a shared one) as long as its content stays.
	Live bool
}

// Progress is how far a copy is. The totals are known before the first
// byte is copied (the source is walked first), so a caller can show a
// percentage.
type Progress struct {
	Files, TotalFiles int64 // entries of every kind made
	Bytes, TotalBytes int64 // bytes of regular files' data (apparent size)
	Reflinked         int64 // files whose data was shared, not copied
}

// Usage is what a tree costs on disk.
type Usage struct {
	// Bytes is the space its blocks take, each hard-linked inode once.
	// Blocks a reflinked copy shares with its source are counted in both
	// (the dir backend cannot tell them apart cheaply).
	Bytes  int64
	Inodes int64
}

// ErrNoCopyOnWrite is returned by Clone with CopyOnWrite when the backend
// or the filesystem under it cannot share data between trees.
var ErrNoCopyOnWrite = errors.New("copy-on-write is not available")

// RunningQuotaSetter is a Backend whose disk limit changes differ while a
// container runs on the tree: the manager calls SetQuotaRunning instead of
// SetQuota then. It refuses (matching ErrStopFirst) what needs the
// container stopped.
type RunningQuotaSetter interface {
	SetQuotaRunning(ctx context.Context, path string, bytes int64) error
}

// ErrQuotaUnsupported is what every *QuotaError matches with errors.Is.
var ErrQuotaUnsupported = errors.New("disk limit cannot be enforced")

// QuotaError says why a backend cannot enforce a disk limit on a path.
type QuotaError struct {
	Backend string
	Path    string
	Reason  string // why, and what the user can do about it
}

func (e *QuotaError) Error() string {
	return fmt.Sprintf("disk limit on %s cannot be enforced by the %s backend: %s", e.Path, e.Backend, e.Reason)
}

// Is makes errors.Is(err, ErrQuotaUnsupported) hold for every QuotaError.
func (e *QuotaError) Is(target error) bool { return target == ErrQuotaUnsupported }

// QuotaChecker is implemented by backends that can tell before any tree
// exists whether they could enforce a disk limit under the lodge root, so
// that a create asking for one is refused before it builds anything.
type QuotaChecker interface {
	CheckQuota(root string) error
}

// CheckQuota says whether b could enforce a disk limit for a new container
// under root: nil, or a *QuotaError with the reason. Backends without a
// check answer nil (SetQuota decides later).
func CheckQuota(b Backend, root string) error {
	if c, ok := b.(QuotaChecker); ok {
		return c.CheckQuota(root)
	}
	return nil
}

// Constructor makes a backend for the lodge root directory root; a backend
// keeps what it needs beyond the trees it is given (shared layers, base
// subvolumes) below root/storage/NAME.
type Constructor func(root string) (Backend, error)

var (
	registryMu sync.Mutex
	// registry starts with the built-in backends.
	registry = map[string]Constructor{
		DirName:     func(string) (Backend, error) { return Dir{}, nil },
		btrfsName:   newBtrfs,
		OverlayName: NewOverlay,
	}
)

// Register adds a backend by name (the built-in ones are in registry from
// the start, without init functions).
func Register(name string, c Constructor) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("storage: backend " + name + " registered twice")
	}
	registry[name] = c
}

// New returns the backend registered as name, for the lodge root root.
func New(name, root string) (Backend, error) {
	registryMu.Lock()
	c, ok := registry[name]
	registryMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("storage backend %q does not exist (known: %s)", name, strings.Join(Names(), ", "))
	}
	return c(root)
}

// Names lists the registered backends, sorted.
func Names() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// RecordFile is the name of the record in a container's directory.
const RecordFile = "storage.json"

// Record is what a container's directory says about its storage: the
// backend that made its root filesystem (the one that must copy, snapshot
// and delete it), and the image it came from, for backends whose containers
// stand on their image (overlay) and for `image delete` to name dependants.
type Record struct {
	Backend string `json:"backend"`
	Image   string `json:"image,omitempty"`
	// Source is the container (or NAME/SNAP) a clone was made from, when
	// the clone still shares data with it through the backend.
	Source string `json:"source,omitempty"`
}

// WriteRecord writes rec into the container directory dir, atomically.
func WriteRecord(dir string, rec Record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, RecordFile), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("record storage backend in %s: %w", dir, err)
	}
	return nil
}

// ReadRecord reads the record in container directory dir. A container made
// before backends existed has none: it is a plain directory, so a missing
// record reads as the dir backend.
func ReadRecord(dir string) (Record, error) {
	data, err := os.ReadFile(filepath.Join(dir, RecordFile))
	if errors.Is(err, os.ErrNotExist) {
		return Record{Backend: DirName}, nil
	}
	if err != nil {
		return Record{}, fmt.Errorf("read storage record: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return Record{}, fmt.Errorf("storage record %s: %w", filepath.Join(dir, RecordFile), err)
	}
	if rec.Backend == "" {
		return Record{}, fmt.Errorf("storage record %s names no backend", filepath.Join(dir, RecordFile))
	}
	return rec, nil
}

// ForContainer returns the backend that made the root filesystem of the
// container whose directory is dir in the lodge root root (the dir backend
// when it has no record).
func ForContainer(root, dir string) (Backend, Record, error) {
	rec, err := ReadRecord(dir)
	if err != nil {
		return nil, Record{}, err
	}
	b, err := New(rec.Backend, root)
	if err != nil {
		return nil, Record{}, fmt.Errorf("container %s: %w", filepath.Base(dir), err)
	}
	return b, rec, nil
}

// TempPrefix starts the name of every entry a backend builds before
// renaming it into place, and of every tree it moves aside to delete.
const TempPrefix = ".lodge-storage-tmp."

// tempPath is a fresh temporary name beside path, for this process.
func tempPath(path, what string) string {
	return filepath.Join(filepath.Dir(path), TempPrefix+filepath.Base(path)+"."+what+"."+strconv.Itoa(os.Getpid())+"."+strconv.FormatUint(nextTemp(), 10))
}

var (
	tempMu sync.Mutex
	tempN  uint64
)

func nextTemp() uint64 {
	tempMu.Lock()
	defer tempMu.Unlock()
	tempN++
	return tempN
}

// RemoveStale deletes what interrupted operations left in dir: every
// TempPrefix entry. The caller holds the lock that serialises operations on
// dir (a running operation's temporary tree would go too).
func RemoveStale(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), TempPrefix) {
			// removeTree: a btrfs backend's leftover is a subvolume,
			// maybe read-only, which os.RemoveAll cannot empty.
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
