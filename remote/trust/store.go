package trust

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"lodge/internal/atomicfile"
	"lodge/manager"
	"lodge/remote/api"
)

// Store is the trust store of a lodge root, ROOT/trust:
//
//	ROOT/trust/trust.json  the trusted clients and the tokens (0600)
//	ROOT/trust/lock        flock'd by every change
//
// lodge serve reads it on every request, so trust remove takes effect at
// once.
type Store struct {
	dir string
}

// Open returns the trust store of a lodge root (made on first change).
func Open(root string) *Store { return &Store{dir: filepath.Join(root, "trust")} }

// Client is a trusted client certificate.
type Client struct {
	Name        string    `json:"name"`
	Fingerprint string    `json:"fingerprint"`
	Added       time.Time `json:"added"`
}

// PendingToken is a token not yet used, as the store keeps it.
type PendingToken struct {
	Name    string    `json:"name,omitempty"`
	Hash    string    `json:"hash"` // SHA-256 of the secret
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	// Used is when it was redeemed, and by whom; a used token stays a while
	// so that a second use is told so, not "unknown".
	Used   *time.Time `json:"used,omitempty"`
	UsedBy string     `json:"used_by,omitempty"`
}

// state is trust.json.
type state struct {
	Clients []Client       `json:"clients"`
	Tokens  []PendingToken `json:"tokens"`
}

// keepSpent is how long a used or expired token is remembered.
const keepSpent = 7 * 24 * time.Hour

func (s *Store) file() string { return filepath.Join(s.dir, "trust.json") }

func (s *Store) read() (state, error) {
	var st state
	data, err := os.ReadFile(s.file())
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("%s: %w", s.file(), err)
	}
	return st, nil
}

// change applies fn to the store under its lock and saves the result.
func (s *Store) change(fn func(*state) error) error {
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(s.dir, "lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	st, err := s.read()
	if err != nil {
		return err
	}
	if err := fn(&st); err != nil {
		return err
	}
	st.Tokens = slices.DeleteFunc(st.Tokens, func(t PendingToken) bool {
		return time.Since(t.Expires) > keepSpent || t.Used != nil && time.Since(*t.Used) > keepSpent
	})
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(s.file(), append(data, '\n'), 0o600)
}

// AddToken makes a one-time token for a client to be trusted as name ("":
// the name the client proposes), valid for ttl, and returns it encoded.
// hostFingerprint is the host certificate's, which the token carries.
func (s *Store) AddToken(name string, ttl time.Duration, hostFingerprint string) (Token, error) {
	if name != "" {
		if err := api.CheckName("client", name); err != nil {
			return Token{}, err
		}
	}
	if ttl <= 0 {
		return Token{}, api.Mark(fmt.Errorf("a token's expiry must be positive, not %s", ttl), manager.ErrInvalid)
	}
	now := time.Now()
	tok := Token{Fingerprint: hostFingerprint, Secret: newSecret(), Expires: now.Add(ttl).UTC().Truncate(time.Second)}
	err := s.change(func(st *state) error {
		if name != "" && st.nameTaken(name, now) {
			return api.Mark(fmt.Errorf("a trusted client or a pending token is already named %q (lodge trust list)", name), manager.ErrExists)
		}
		st.Tokens = append(st.Tokens, PendingToken{Name: name, Hash: hashSecret(tok.Secret), Created: now.UTC(), Expires: tok.Expires})
		return nil
	})
	return tok, err
}

func (st *state) nameTaken(name string, now time.Time) bool {
	for _, c := range st.Clients {
		if c.Name == name {
			return true
		}
	}
	for _, t := range st.Tokens {
		if t.Name == name && t.Used == nil && now.Before(t.Expires) {
			return true
		}
	}
	return false
}

// Redeem trusts the client certificate with fingerprint if secret is a
// pending token's, marks the token used and returns the name the client is
// trusted as: the token's, else proposed (made unique), else "client".
func (s *Store) Redeem(secret, fingerprint, proposed string) (string, error) {
	var name string
	err := s.change(func(st *state) error {
		now := time.Now()
		i := slices.IndexFunc(st.Tokens, func(t PendingToken) bool { return t.Hash == hashSecret(secret) })
		if i < 0 {
			return api.Mark(errors.New("this host knows no such token (a wrong token, one removed with lodge trust remove, or one for another host)"), api.ErrTokenUnknown)
		}
		tok := &st.Tokens[i]
		switch {
		case tok.Used != nil:
			return api.Mark(fmt.Errorf("the token was already used (at %s, by %s): a token works once; make another with lodge trust add", tok.Used.Format(time.RFC3339), tok.UsedBy), api.ErrTokenUsed)
		case !now.Before(tok.Expires):
			return api.Mark(fmt.Errorf("the token expired at %s; make another with lodge trust add", tok.Expires.Format(time.RFC3339)), api.ErrTokenExpired)
		}
		if c := st.clientWith(fingerprint); c != nil {
			return api.Mark(fmt.Errorf("this client's certificate is already trusted as %q", c.Name), manager.ErrExists)
		}
		name = st.freeName(tok.Name, proposed, now)
		st.Clients = append(st.Clients, Client{Name: name, Fingerprint: fingerprint, Added: now.UTC()})
		used := now.UTC()
		tok.Used, tok.UsedBy = &used, name
		return nil
	})
	return name, err
}

func (st *state) clientWith(fingerprint string) *Client {
	for i := range st.Clients {
		if st.Clients[i].Fingerprint == fingerprint {
			return &st.Clients[i]
		}
	}
	return nil
}

// freeName is the token's name if it has one, else proposed (or "client")
// with a number added until no client has it.
func (st *state) freeName(tokenName, proposed string, now time.Time) string {
	if tokenName != "" {
		return tokenName // nameTaken refused a clash when the token was made
	}
	base := proposed
	if api.CheckName("client", base) != nil {
		base = "client"
	}
	name := base
	for n := 2; st.nameTaken(name, now); n++ {
		name = fmt.Sprintf("%s-%d", base, n)
	}
	return name
}

// Trusted returns the name of the client whose certificate has fingerprint,
// or an error of kind api.ErrNotTrusted.
func (s *Store) Trusted(fingerprint string) (string, error) {
	st, err := s.read()
	if err != nil {
		return "", err
	}
	if c := st.clientWith(fingerprint); c != nil {
		return c.Name, nil
	}
	return "", api.Mark(fmt.Errorf("this host does not trust the client certificate %s; on the host, lodge trust add makes a token for lodge remote add", fingerprint), api.ErrNotTrusted)
}

// Listing is what trust list shows: the clients and the pending tokens.
type Listing struct {
	Clients []Client     `json:"clients" yaml:"clients"`
	Tokens  []TokenEntry `json:"tokens" yaml:"tokens"`
}

// TokenEntry is a pending token (never its secret or hash).
type TokenEntry struct {
	Name    string    `json:"name,omitempty" yaml:"name,omitempty"`
	Created time.Time `json:"created" yaml:"created"`
	Expires time.Time `json:"expires" yaml:"expires"`
}

// List returns the trusted clients and the tokens still usable.
func (s *Store) List() (Listing, error) {
	st, err := s.read()
	if err != nil {
		return Listing{}, err
	}
	l := Listing{Clients: st.Clients, Tokens: []TokenEntry{}}
	if l.Clients == nil {
		l.Clients = []Client{}
	}
	now := time.Now()
	for _, t := range st.Tokens {
		if t.Used == nil && now.Before(t.Expires) {
			l.Tokens = append(l.Tokens, TokenEntry{Name: t.Name, Created: t.Created, Expires: t.Expires})
		}
	}
	return l, nil
}

// Remove stops trusting the client named name, or revokes the pending
// token of that name.
func (s *Store) Remove(name string) error {
	return s.change(func(st *state) error {
		n := len(st.Clients) + len(st.Tokens)
		st.Clients = slices.DeleteFunc(st.Clients, func(c Client) bool { return c.Name == name })
		st.Tokens = slices.DeleteFunc(st.Tokens, func(t PendingToken) bool { return t.Name == name && t.Used == nil })
		if len(st.Clients)+len(st.Tokens) == n {
			return api.Mark(fmt.Errorf("no trusted client or pending token is named %q (lodge trust list)", name), manager.ErrNotFound)
		}
		return nil
	})
}
