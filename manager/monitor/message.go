package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"lodge/internal/seccomp"
)

// The monitor and the container's first process talk over a SOCK_SEQPACKET
// socketpair: one JSON message per packet, with file descriptors attached as
// SCM_RIGHTS. Packet boundaries make each message arrive whole or not at all.

const maxMessage = 64 << 10

// message is one packet of the monitor/child protocol (see spawn.go).
type message struct {
	Type  string     `json:"type"`
	Error string     `json:"error,omitempty"`
	Setup *initSetup `json:"setup,omitempty"`
	// layers: where the overlay layers are attached (0..Count-1), for
	// the restore's held child (restore.go).
	Path  string `json:"path,omitempty"`
	Count int    `json:"count,omitempty"`
}

// socketpair returns two connected SEQPACKET sockets, close-on-exec.
func socketpair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "monitor-sync"), os.NewFile(uintptr(fds[1]), "init-sync"), nil
}

// send writes msg with the given files attached.
func send(sock *os.File, msg message, files ...*os.File) error {
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(int(sock.Fd()), data, oob, nil, 0); err != nil {
		return fmt.Errorf("send %s message: %w", msg.Type, err)
	}
	return nil
}

// errPeerClosed is returned by receive when the other end closed the socket,
// which for the child means it executed init (its end is close-on-exec) or died.
var errPeerClosed = fmt.Errorf("peer closed the connection")

// maxFiles is the most descriptors one message carries: the setup message
// has the mount tree, its target and one per /proc and /sys view.
const maxFiles = 32

// receive reads one message and the files attached to it.
func receive(sock *os.File) (message, []*os.File, error) {
	buf := make([]byte, maxMessage)
	oob := make([]byte, unix.CmsgSpace(maxFiles*4))
	for {
		n, oobn, recvFlags, _, err := unix.Recvmsg(int(sock.Fd()), buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return message{}, nil, fmt.Errorf("receive: %w", err)
		}
		if n == 0 && oobn == 0 {
			return message{}, nil, errPeerClosed
		}
		files, err := parseRights(oob[:oobn])
		if err != nil {
			return message{}, nil, err
		}
		if recvFlags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 {
			closeAll(files)
			return message{}, nil, fmt.Errorf("receive: message or its descriptors truncated (flags %#x)", recvFlags)
		}
		msg, err := decodeMessage(buf[:n])
		if err != nil {
			closeAll(files)
			return message{}, nil, err
		}
		return msg, files, nil
	}
}

// decodeMessage parses one packet and checks what its receiver relies on:
// a known type, and for a setup a command to execute and a whole seccomp
// program (InitMain takes them as given).
func decodeMessage(data []byte) (message, error) {
	var msg message
	if err := json.Unmarshal(data, &msg); err != nil {
		return message{}, fmt.Errorf("decode message: %w", err)
	}
	switch msg.Type {
	case "console", "exec", "kernfs", "tree", "layers": // the descriptors they carry are checked by their receivers
	case "error":
		if msg.Error == "" {
			return message{}, errors.New("decode message: an error message without the error")
		}
	case "setup":
		s := msg.Setup
		switch {
		case s == nil:
			return message{}, errors.New("decode message: a setup message without the setup")
		case len(s.Command) == 0 || s.Command[0] == "":
			return message{}, errors.New("decode message: a setup without a command for init")
		case len(s.Views) > maxFiles-2:
			return message{}, fmt.Errorf("decode message: a setup with %d views, more than a message carries", len(s.Views))
		}
		if _, err := seccomp.FromBytes(s.Seccomp); err != nil {
			return message{}, fmt.Errorf("decode message: a setup without a usable seccomp filter: %w", err)
		}
	default:
		return message{}, fmt.Errorf("decode message: unknown type %q", msg.Type)
	}
	return msg, nil
}

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var files []*os.File
	for _, c := range cmsgs {
		fds, err := unix.ParseUnixRights(&c)
		if err != nil {
			return nil, err
		}
		for _, fd := range fds {
			// Non-blocking, so that os.File uses the runtime poller where the
			// descriptor supports it (a pty master does) and Close interrupts a Read.
			unix.SetNonblock(fd, true)
			files = append(files, os.NewFile(uintptr(fd), "received"))
		}
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
