package server

import (
	"fmt"
	"net"
	"os"
)

// notifyReady tells systemd the server is up when it runs as a Type=notify
// service (lodge-lxcfs.service, docs/service.md), so that units ordered
// after it (lodge-containers.service, whose autostart starts containers)
// start only once the views are mounted; otherwise the first start at boot
// could find no server and start a supervised one of its own. Outside
// systemd, $NOTIFY_SOCKET is unset and it does nothing. (Go's net package
// maps a leading '@', systemd's abstract socket, as systemd means it.)
func notifyReady() error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("tell systemd the server is ready (NOTIFY_SOCKET %s): %w", addr, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("READY=1")); err != nil {
		return fmt.Errorf("tell systemd the server is ready (NOTIFY_SOCKET %s): %w", addr, err)
	}
	return nil
}
