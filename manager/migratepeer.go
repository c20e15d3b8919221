package manager

import (
	"context"
	"io"
	"time"

	"lodge/migrate"
)

// A migration moves a running container to another manager, the target,
// through a MigrationTarget: the target's side of the protocol, in the
// order Migrate calls it. Messages are JSON-serializable and data goes as
// plain streams, so that the host API can carry each call as one request;
// LocalTarget is the in-process one (two lodge roots of one machine).
// docs/migration.md has the phases and what each failure leaves.

// MigrationTarget is the receiving side of a migration.
type MigrationTarget interface {
	// Preflight checks that the target can take the container (see
	// Manager.AcceptMigration) and reserves its name and id range there.
	Preflight(ctx context.Context, offer MigrationOffer) (MigrationAnswer, error)
	// ReceiveLayer takes one shared overlay layer the target lacks (a
	// tree stream, migrate.SendTree).
	ReceiveLayer(ctx context.Context, name, layer string, r io.Reader) error
	// ReceiveRootfs takes the container's tree: whole first, then the
	// frozen pass's delta.
	ReceiveRootfs(ctx context.Context, name string, r io.Reader) error
	// ReceiveCheckpoint takes the checkpoint's directory (CRIU's images
	// and lodge's record).
	ReceiveCheckpoint(ctx context.Context, name string, r io.Reader) error
	// Restore makes the container there and restores it; it returns once
	// it runs, or fails having removed everything of it.
	Restore(ctx context.Context, name string) (MigrationRestored, error)
	// Abort removes everything the target holds of the migration, also
	// a container it restored (the source did not get Restore's answer)
	// until Commit, and also from a process that did not receive it (a
	// restarted server).
	Abort(ctx context.Context, name string) error
	// Commit says the source removed its copy (CRIU killed its tree):
	// from then on the container is the target's alone.
	Commit(ctx context.Context, name string) error
}

// MigrationOffer is what the source says of the container it sends.
type MigrationOffer struct {
	Name    string `json:"name"`
	Config  []byte `json:"config"`  // its config.toml
	Backend string `json:"backend"` // its storage backend: dir or overlay
	Image   string `json:"image,omitempty"`
	// Layers are an overlay tree's shared layers, topmost first, and
	// BaseImage its image's root filesystem directory (the bottom layer).
	Layers    []string `json:"layers,omitempty"`
	BaseImage string   `json:"base_image,omitempty"`
	// HostID and IDCount are its id range, which CRIU's images hold as
	// absolute id maps: the target keeps it when it is free there, or
	// gives the container one of its own (MigrationAnswer.HostID).
	HostID  uint32 `json:"host_id"`
	IDCount uint32 `json:"id_count"`
	// Shifted: its tree's files were chowned into its range (the chown
	// shift): the target cannot give it another range.
	Shifted  bool     `json:"shifted,omitempty"`
	CRIU     int      `json:"criu_version"`
	Networks []string `json:"networks,omitempty"` // the managed networks its NICs are on
	Bytes    int64    `json:"bytes"`              // disk its tree and checkpoint will take, about
	// CPU is the source's: its architecture and the flags any of its
	// processors has, which the container's processes may use; the target
	// refuses when its own CPU lacks one that matters to user space.
	CPU migrate.CPU `json:"cpu"`
	// Source is the source host's name, for the target's event log.
	Source string `json:"source,omitempty"`
}

// MigrationAnswer is the target's answer to a preflight that passed.
type MigrationAnswer struct {
	MissingLayers []string `json:"missing_layers,omitempty"` // overlay layers to send
	// HostID and IDCount are the id range the container gets on the
	// target: the offer's, or, when that one is taken there or not a range
	// of its pool, one of the target's own (remapped: the target rewrites
	// the checkpoint's id maps before the restore, migrate.RemapImages).
	// Zero from a target that does not remap.
	HostID  uint32 `json:"host_id,omitempty"`
	IDCount uint32 `json:"id_count,omitempty"`
	CRIU    int    `json:"criu_version"`
	// CRIUFeatures are those of migrate.RestoreFeatures that the target's
	// CRIU has on its kernel: the source refuses when its dump uses one
	// the target lacks (migrate.DumpFeatures).
	CRIUFeatures []string `json:"criu_features,omitempty"`
	// What the target allows for --live: soft-dirty memory tracking
	// (pre-copy), and userfaultfd for CRIU's lazy pages and for the
	// container's user namespace (post-copy).
	MemTrack              bool `json:"mem_track"`
	LazyPages             bool `json:"lazy_pages"`
	UnprivilegedUserfault bool `json:"unprivileged_userfaultfd"`
}

// MigrationRestored is what the target says of the restored container.
type MigrationRestored struct {
	PID     int       `json:"pid"`
	Running time.Time `json:"running"` // when the restore finished
}

// LocalTarget is a MigrationTarget backed by a manager of this process
// (another lodge root and host config on the same machine).
type LocalTarget struct {
	M *Manager
	// Offer, if set, changes the offer before the target sees it, and
	// Answer the target's answer before the source does: tests make the
	// two hosts differ (a CPU flag, a CRIU feature).
	Offer  func(*MigrationOffer)
	Answer func(*MigrationAnswer)
	// BeforeRestore, if set, runs on the received checkpoint directory
	// before the restore: tests damage it there to make the restore fail.
	BeforeRestore func(dir string) error
	// AfterRestore, if set, runs after a restore that succeeded, and an
	// error it returns is Restore's: tests lose the answer of a restore
	// that ran, as a cut connection would.
	AfterRestore func() error
}

var _ MigrationTarget = (*LocalTarget)(nil)

// Preflight implements MigrationTarget.
func (t *LocalTarget) Preflight(ctx context.Context, offer MigrationOffer) (MigrationAnswer, error) {
	if t.Offer != nil {
		t.Offer(&offer)
	}
	ans, err := t.M.AcceptMigration(ctx, offer)
	if err == nil && t.Answer != nil {
		t.Answer(&ans)
	}
	return ans, err
}

// ReceiveLayer implements MigrationTarget.
func (t *LocalTarget) ReceiveLayer(ctx context.Context, name, layer string, r io.Reader) error {
	return t.M.ReceiveMigrationLayer(ctx, name, layer, r)
}

// ReceiveRootfs implements MigrationTarget.
func (t *LocalTarget) ReceiveRootfs(ctx context.Context, name string, r io.Reader) error {
	return t.M.ReceiveMigrationRootfs(ctx, name, r)
}

// ReceiveCheckpoint implements MigrationTarget.
func (t *LocalTarget) ReceiveCheckpoint(ctx context.Context, name string, r io.Reader) error {
	return t.M.ReceiveMigrationCheckpoint(ctx, name, r)
}

// Restore implements MigrationTarget.
func (t *LocalTarget) Restore(ctx context.Context, name string) (MigrationRestored, error) {
	if t.BeforeRestore != nil {
		if dir, ok := t.M.incomingCheckpoint(name); ok {
			if err := t.BeforeRestore(dir); err != nil {
				return MigrationRestored{}, err
			}
		}
	}
	done, err := t.M.RestoreMigration(ctx, name)
	if err == nil && t.AfterRestore != nil {
		err = t.AfterRestore()
	}
	return done, err
}

// Commit implements MigrationTarget.
func (t *LocalTarget) Commit(ctx context.Context, name string) error {
	return t.M.CommitMigration(ctx, name)
}

// Abort implements MigrationTarget.
func (t *LocalTarget) Abort(ctx context.Context, name string) error {
	return t.M.AbortMigration(ctx, name)
}
