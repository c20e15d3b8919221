package migrate

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/checkpoint-restore/go-criu/v7/rpc"
	"google.golang.org/protobuf/proto"
)

// swrk is one "criu swrk 3" process and lodge's end of its RPC socket (a
// SOCK_SEQPACKET pair, CRIU's end as its fd 3), spoken with go-criu's
// message types. go-criu (v7.2.0) has no call for what lodge needs: its
// calls start criu once per request, answer notifications through a fixed
// interface, and give the process no group or extra descriptors.
type swrk struct {
	cmd    *exec.Cmd
	conn   *os.File
	stderr strings.Builder
	buf    []byte
}

// startSwrk starts CRIU at path in swrk mode. extra are more descriptors
// it inherits (fd 4 on), and attr its process attributes (may be nil).
// The socket is non-blocking, so that deadlines work on it.
func startSwrk(path string, extra []*os.File, attr *syscall.SysProcAttr) (*swrk, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	if err := syscall.SetNonblock(fds[0], true); err != nil {
		syscall.Close(fds[0])
		syscall.Close(fds[1])
		return nil, err
	}
	s := &swrk{conn: os.NewFile(uintptr(fds[0]), "criu-swrk-client"), buf: make([]byte, 64<<10)}
	srv := os.NewFile(uintptr(fds[1]), "criu-swrk-server")
	s.cmd = exec.Command(path, "swrk", "3")
	s.cmd.ExtraFiles = append([]*os.File{srv}, extra...)
	s.cmd.SysProcAttr = attr
	s.cmd.Stderr = &s.stderr
	err = s.cmd.Start()
	srv.Close()
	if err != nil {
		s.conn.Close()
		return nil, err
	}
	return s, nil
}

// call sends req and returns CRIU's answer; an answer that reports a
// failure is an error.
func (s *swrk) call(req *rpc.CriuReq) (*rpc.CriuResp, error) {
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := s.conn.Write(b); err != nil {
		return nil, err
	}
	n, err := s.conn.Read(s.buf)
	if err != nil {
		return nil, err
	}
	resp := &rpc.CriuResp{}
	if err := proto.Unmarshal(s.buf[:n], resp); err != nil {
		return nil, err
	}
	if !resp.GetSuccess() {
		return resp, fmt.Errorf("%v request failed: %s (errno %d)", resp.GetType(), resp.GetCrErrmsg(), resp.GetCrErrno())
	}
	return resp, nil
}

// run sends req (a dump or a restore) and answers CRIU's notifications
// with notify's verdict until CRIU's response to req.
func (s *swrk) run(req *rpc.CriuReq, notify func(*rpc.CriuNotify) bool) error {
	for {
		resp, err := s.call(req)
		if err != nil || resp.GetType() != rpc.CriuReqType_NOTIFY {
			return err
		}
		ok := notify(resp.GetNotify())
		req = &rpc.CriuReq{Type: rpc.CriuReqType_NOTIFY.Enum(), NotifySuccess: proto.Bool(ok)}
	}
}

// finish closes the socket (CRIU's swrk ends with it), kills CRIU first
// if callErr says the session went wrong and kill is set, waits for it,
// and returns callErr with what CRIU printed on stderr, or how it ended.
func (s *swrk) finish(callErr error, kill bool) error {
	s.conn.Close()
	if callErr != nil && kill {
		_ = s.cmd.Process.Kill() // it may be stuck, or not CRIU at all
	}
	waitErr := s.cmd.Wait()
	if callErr == nil {
		return nil
	}
	if msg := strings.TrimSpace(s.stderr.String()); msg != "" {
		return fmt.Errorf("%w (stderr: %s)", callErr, strings.ReplaceAll(msg, "\n", "; "))
	}
	if waitErr != nil {
		return fmt.Errorf("%w (criu: %v)", callErr, waitErr)
	}
	return callErr
}
