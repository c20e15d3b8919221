package server

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"

	"lodge/manager"
	"lodge/remote/api"
)

// maxBody bounds a request's body: requests are small JSON objects.
const maxBody = 1 << 20

// stream writes a response as JSON lines (api.Line): progress as it comes,
// then the result or the error.
type stream struct {
	mu  sync.Mutex
	w   http.ResponseWriter
	enc *json.Encoder
}

func newStream(w http.ResponseWriter) *stream {
	w.Header().Set("Content-Type", "application/x-ndjson")
	return &stream{w: w, enc: json.NewEncoder(w)}
}

func (s *stream) write(line api.Line) {
	s.writeErr(line) // a client that went away: the operation runs on regardless
}

// writeErr writes and flushes one line, and says whether it went out.
func (s *stream) writeErr(line api.Line) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enc.Encode(line); err != nil {
		return err
	}
	return s.flush()
}

// flush sends what was written so far (the caller holds mu, or owns the
// stream alone).
func (s *stream) flush() error {
	return http.NewResponseController(s.w).Flush()
}

func (s *stream) progress(format string, args ...any) {
	s.write(api.Line{Progress: fmt.Sprintf(format, args...)})
}

func (s *stream) finish(result any, err error) {
	if err != nil {
		s.write(api.Line{Error: api.ErrorOf(err)})
		return
	}
	if result == nil {
		result = api.Empty{}
	}
	s.write(api.Line{Result: result})
}

// writeError answers a request refused before any operation ran.
func writeError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(api.Line{Error: api.ErrorOf(err)})
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && err != io.EOF {
		return api.Mark(fmt.Errorf("the request's body: %w", err), manager.ErrInvalid)
	}
	return nil
}
