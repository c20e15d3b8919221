package manager

import (
	"context"
	"io"
	"os"
)

// stdio is a command's stdin, stdout and stderr as files for the helper:
// the caller's own files as they are, /dev/null for nil streams, and pipes
// copied from or to any other reader or writer.
type stdio struct {
	streams [3]stream
}

// stream is one of stdio's files.
type stream struct {
	f     *os.File      // handed to the helper
	close bool          // f is ours: closed once the helper holds its own copy
	ours  *os.File      // our end of a pipe; nil if none
	done  chan struct{} // closed when the copy through the pipe has ended
}

func (s *stdio) open(stdin io.Reader, stdout, stderr io.Writer) error {
	var err error
	if s.streams[0], err = inputStream(stdin); err != nil {
		return err
	}
	if s.streams[1], err = outputStream(stdout); err != nil {
		return err
	}
	s.streams[2], err = outputStream(stderr)
	return err
}

func (s *stdio) files() [3]*os.File {
	return [3]*os.File{s.streams[0].f, s.streams[1].f, s.streams[2].f}
}

// started closes our copies of the helper's ends: the pipes then end when
// the command (and whatever it left holding them) is done. It may be called
// more than once.
func (s *stdio) started() {
	for i := range s.streams {
		if st := &s.streams[i]; st.close && st.f != nil {
			st.f.Close()
			st.f = nil
		}
	}
}

// finish waits for the output copies to complete (all of them at once, or
// what is left once ctx has ended) and closes our ends of the pipes, which
// ends the input copy at its next write.
func (s *stdio) finish(ctx context.Context) {
	for i := range s.streams {
		st := &s.streams[i]
		if st.ours == nil {
			continue
		}
		if i == 0 {
			st.ours.Close()
			continue
		}
		select {
		case <-st.done:
		case <-ctx.Done():
			st.ours.Close() // a process left in the container must not hold us
			<-st.done
		}
	}
}

func inputStream(r io.Reader) (stream, error) {
	if r == nil {
		f, err := os.Open(os.DevNull)
		return stream{f: f, close: true}, err
	}
	if f, ok := r.(*os.File); ok {
		return stream{f: f}, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return stream{}, err
	}
	go func() { io.Copy(pw, r); pw.Close() }()
	return stream{f: pr, close: true, ours: pw}, nil
}

func outputStream(w io.Writer) (stream, error) {
	if w == nil {
		f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		return stream{f: f, close: true}, err
	}
	if f, ok := w.(*os.File); ok {
		return stream{f: f}, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return stream{}, err
	}
	st := stream{f: pw, close: true, ours: pr, done: make(chan struct{})}
	go func() { io.Copy(w, pr); pr.Close(); close(st.done) }()
	return st, nil
}
