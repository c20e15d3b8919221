package templates

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Tarballs are read and written by GNU tar, which keeps what a root filesystem
// needs (ownership by number, modes, hard links, device nodes, xattrs, ACLs,
// file capabilities); compression is gzip, xz or zstd, chosen by the file's
// name when writing and by its first bytes when reading.

var tarFlags = []string{"--numeric-owner", "--xattrs", "--xattrs-include=*", "--acls"}

// compressions maps file name endings to the compressor for writing.
var compressions = []struct {
	suffixes []string
	command  []string
}{
	{[]string{".tar.gz", ".tgz"}, []string{"gzip", "-c"}},
	{[]string{".tar.xz", ".txz"}, []string{"xz", "-c", "-T0"}},
	{[]string{".tar.zst", ".tar.zstd", ".tzst"}, []string{"zstd", "-q", "-c", "-T0"}},
	{[]string{".tar"}, nil},
}

// compressorFor returns the compressor for file name (nil: none).
func compressorFor(name string) ([]string, error) {
	var known []string
	for _, c := range compressions {
		for _, suffix := range c.suffixes {
			if strings.HasSuffix(name, suffix) {
				return c.command, nil
			}
			known = append(known, suffix)
		}
	}
	return nil, fmt.Errorf("%s: name the file .tar, %s: %w", name, strings.Join(known[:len(known)-1], ", "), ErrBadName)
}

// decompressorFor recognises the compression of a file by its magic bytes
// and returns the command that decompresses it (nil: none).
func decompressorFor(head []byte) ([]string, error) {
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return []string{"gzip", "-d", "-c"}, nil
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return []string{"xz", "-d", "-c"}, nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return []string{"zstd", "-d", "-q", "-c"}, nil
	case len(head) > 262 && string(head[257:262]) == "ustar":
		return nil, nil
	}
	return nil, errors.New("not a tar archive (plain, gzip, xz or zstd)")
}

// Import unpacks a root filesystem tarball into a new image named alias. The
// tarball holds the root filesystem itself, or (LXC and Incus images) a
// rootfs/ directory beside metadata.yaml. Its id is derived from its content.
// Its members pass the image rules (sanitize.go) on their way to tar, into a
// staging directory that is private before tar starts; what the rules changed
// is in the image's Changes.
func (s *Images) Import(ctx context.Context, file, alias string, report Reporter) (Image, error) {
	if err := checkAlias(alias); err != nil {
		return Image{}, err
	}
	if _, err := s.Lookup(alias); err == nil {
		return Image{}, fmt.Errorf("an image named %q %w; pick another alias or delete it: lodge image delete %s", alias, ErrImageExists, alias)
	}
	unlock, err := s.lock(ctx, "import-"+alias, report)
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	tmp, err := s.tempDir("import-" + alias)
	if err != nil {
		return Image{}, err
	}
	defer os.RemoveAll(tmp)
	changes := &Changes{}
	sum, err := extract(ctx, file, filepath.Join(tmp, "unpacked"), changes, report)
	if err != nil {
		return Image{}, err
	}
	if err := moveRootfs(filepath.Join(tmp, "unpacked"), filepath.Join(tmp, "rootfs")); err != nil {
		return Image{}, err
	}
	abs, _ := filepath.Abs(file)
	img := Image{ID: "img-" + sum[:12], Aliases: []string{alias}, Source: abs,
		Created: time.Now().UTC().Truncate(time.Second), Size: treeSize(filepath.Join(tmp, "rootfs")),
		Changes: changes.Lines(), Checked: sanitizeVersion}
	if _, err := s.read(img.ID); err == nil {
		return s.addAlias(ctx, img.ID, alias, report)
	}
	if err := s.install(tmp, img); err != nil {
		return Image{}, err
	}
	return img, nil
}

// checkAlias allows names like container names, plus dots and underscores.
func checkAlias(alias string) error {
	ok := alias != "" && len(alias) <= 128 && !strings.ContainsFunc(alias, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._", r))
	}) && alias[0] != '.' && alias[0] != '-'
	if !ok {
		return fmt.Errorf("image alias %q: use letters, digits, dashes, dots and underscores, not starting with a dot or dash: %w", alias, ErrBadName)
	}
	return nil
}

// addAlias names an image imported before (from the same file) alias too,
// checking it first if an older lodge imported it.
func (s *Images) addAlias(ctx context.Context, id, alias string, report Reporter) (Image, error) {
	unlock, err := s.lock(ctx, id, report)
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	img, err := s.read(id)
	if err != nil {
		return Image{}, err
	}
	if img, err = s.recheck(img, report); err != nil {
		return Image{}, err
	}
	img.Aliases = append(img.Aliases, alias)
	return img, s.writeMeta(img)
}

// extract unpacks file into dir and returns the file's sha256. The file is
// decompressed (by gzip, xz or zstd), its members pass the image rules in
// filterTarball, and GNU tar unpacks what is left, with xattrs and ACLs.
func extract(ctx context.Context, file, dir string, changes *Changes, report Reporter) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("import: %w", err)
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	decompressor, err := decompressorFor(head[:n])
	if err != nil {
		return "", fmt.Errorf("import %s: %w", file, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	info, _ := f.Stat()
	h := sha256.New()
	in := &countingReader{r: io.TeeReader(f, h), total: info.Size(), report: report, label: "importing " + filepath.Base(file)}
	if err := unpack(ctx, in, decompressor, dir, changes); err != nil {
		return "", fmt.Errorf("import %s: %w", file, err)
	}
	if _, err := io.Copy(io.Discard, in); err != nil { // the id is the whole file's
		return "", fmt.Errorf("import %s: %w", file, err)
	}
	return hexSum(h), nil
}

// unpack runs the pipeline: in, through the decompressor (if any), through
// filterTarball, into tar -x in dir. The decompressor's output is read to its
// end whatever happens, so that it ends by itself and its own error (a
// corrupt file) is told apart from the others.
func unpack(ctx context.Context, in io.Reader, decompressor []string, dir string, changes *Changes) error {
	src, finish, err := decompress(ctx, in, decompressor)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	filtered := make(chan error, 1)
	go func() {
		err := filterTarball(src, pw, changes)
		pw.CloseWithError(err)
		io.Copy(io.Discard, src)
		filtered <- err
	}()
	args := append([]string{"-x", "-f", "-", "-C", dir}, tarFlags...)
	tarErr := runTar(ctx, args, pr, nil)
	pr.CloseWithError(errTarStopped)
	filterErr := <-filtered
	decompressErr := finish()
	switch {
	case decompressErr != nil:
		return decompressErr
	case filterErr != nil && !errors.Is(filterErr, errTarStopped):
		return filterErr
	}
	return tarErr
}

var errTarStopped = errors.New("tar stopped reading")

// decompress starts the decompressor on in and returns its output, and a
// function that waits for it and says how it ended.
func decompress(ctx context.Context, in io.Reader, command []string) (io.Reader, func() error, error) {
	if command == nil {
		return in, func() error { return nil }, nil
	}
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = in, &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", command[0], err)
	}
	return out, func() error {
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("%s: %v: %s", command[0], err, strings.TrimSpace(stderr.String()))
		}
		return nil
	}, nil
}

// moveRootfs finds the root filesystem in an unpacked tarball and moves it to
// dst. Symlinks are not followed: a rootfs or etc that is a symlink does not
// count (it could point anywhere on the host).
func moveRootfs(unpacked, dst string) error {
	src := unpacked
	if isDir(filepath.Join(unpacked, "rootfs")) && !isDir(filepath.Join(unpacked, "etc")) {
		src = filepath.Join(unpacked, "rootfs")
	}
	if !isDir(filepath.Join(src, "etc")) {
		return errors.New("import: the tarball has no etc/ directory (at its top or under rootfs/): it is not a root filesystem")
	}
	return os.Rename(src, dst)
}

// isDir reports whether path is a directory, not a symlink to one.
func isDir(path string) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.IsDir()
}

// Export writes image name's root filesystem to file as a tarball, compressed
// as the file's name says. The file appears only once it is complete.
func (s *Images) Export(ctx context.Context, name, file string, report Reporter) error {
	img, err := s.Lookup(name)
	if err != nil {
		return err
	}
	compressor, err := compressorFor(file)
	if err != nil {
		return err
	}
	tmp := file + ".tmp-" + strconv.Itoa(os.Getpid())
	out, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer os.Remove(tmp)
	err = writeTarball(ctx, s.Rootfs(img.ID), out, compressor, img.Size, report)
	if closeErr := out.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", img.ID, err)
	}
	return os.Rename(tmp, file)
}

// writeTarball streams tar's output, counted for progress, through the
// compressor (if any) into out.
func writeTarball(ctx context.Context, rootfs string, out io.Writer, compressor []string, size int64, report Reporter) error {
	pr, pw := io.Pipe()
	var compressed error
	done := make(chan struct{})
	go func() {
		defer close(done)
		in := &countingReader{r: pr, total: size, report: report, label: "exporting"}
		if compressor == nil {
			_, compressed = io.Copy(out, in)
		} else {
			cmd := exec.CommandContext(ctx, compressor[0], compressor[1:]...)
			cmd.Stdin, cmd.Stdout = in, out
			compressed = cmd.Run()
		}
		pr.CloseWithError(compressed)
	}()
	args := append([]string{"-c", "-f", "-", "-C", rootfs}, tarFlags...)
	err := runTar(ctx, append(args, "."), nil, pw)
	pw.CloseWithError(err)
	<-done
	return errors.Join(err, compressed)
}

// runTar runs GNU tar with its standard input and output as given.
func runTar(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, "tar", args...)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if lines := strings.Split(msg, "\n"); len(lines) > 3 {
			msg = strings.Join(slices.Clone(lines[len(lines)-3:]), "; ")
		}
		return fmt.Errorf("tar: %v: %s", err, msg)
	}
	return nil
}

// countingReader reports how much of a stream has passed.
type countingReader struct {
	r      io.Reader
	n      int64
	total  int64
	report Reporter
	label  string
	last   time.Time
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if time.Since(c.last) > 200*time.Millisecond || err == io.EOF {
		c.report.Progress(c.label, c.n, c.total)
		c.last = time.Now()
	}
	return n, err
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }
