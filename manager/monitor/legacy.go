package monitor

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// A container started by a lodge from before protocol versions has a monitor
// that reads one JSON object per request line and answers without a code.
// Such a monitor refuses a versioned request with a codeless error; Do then
// asks again in its language, so that stop (and resize) keep working on
// containers that ran through an upgrade of lodge. Console attaches refuse
// them with the monitor's error (ErrInternal): a restart brings a current one.

// legacyRequest is the JSON request of such a monitor.
type legacyRequest struct {
	Op      string        `json:"op"`
	Signal  int           `json:"signal,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
	Force   bool          `json:"force,omitempty"`
	Rows    uint16        `json:"rows,omitempty"`
	Cols    uint16        `json:"cols,omitempty"`
}

// doLegacy sends req to a monitor from before protocol versions.
func doLegacy(ctx context.Context, socketPath string, req Request) (Response, error) {
	conn, err := Dial(socketPath)
	if err != nil {
		return Response{}, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	data, _ := json.Marshal(legacyRequest(req))
	if _, err := conn.Write(append(data, '\n')); err != nil {
		return Response{}, fmt.Errorf("send %s request to the monitor: %w", req.Op, err)
	}
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		if ctx.Err() != nil {
			return Response{}, ctx.Err()
		}
		return Response{}, fmt.Errorf("read %s response from the monitor: %w", req.Op, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return Response{}, fmt.Errorf("decode monitor response: %w", err)
	}
	if !resp.OK {
		return resp, resp.err()
	}
	return resp, nil
}
