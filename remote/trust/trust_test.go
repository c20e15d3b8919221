package trust

import (
	"errors"
	"strings"
	"testing"
	"time"

	"lodge/manager"
	"lodge/remote/api"
)

const hostFP = "b3847698d061fd80e41f624fa555605e69c7a63dfb82339ae9cbe31655380ac1"

func TestTokenRoundTrip(t *testing.T) {
	tok := Token{Fingerprint: hostFP, Secret: newSecret(), Expires: time.Now().UTC().Truncate(time.Second)}
	got, err := DecodeToken(" " + tok.Encode() + "\n")
	if err != nil || got != tok {
		t.Fatalf("DecodeToken = %+v, %v; want %+v", got, err, tok)
	}
	for _, bad := range []string{"", "lodge1.", "lodge1.!!", "x" + tok.Encode(), "lodge1.e30"} {
		if _, err := DecodeToken(bad); !errors.Is(err, api.ErrTokenUnknown) {
			t.Errorf("DecodeToken(%q) = %v, want an unknown-token error", bad, err)
		}
	}
}

func TestTokenWorksOnce(t *testing.T) {
	s := Open(t.TempDir())
	tok, err := s.AddToken("h1", time.Hour, hostFP)
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := s.List(); len(l.Tokens) != 1 || l.Tokens[0].Name != "h1" || len(l.Clients) != 0 {
		t.Fatalf("list before redeeming: %+v", l)
	}
	if _, err := s.Trusted("fp1"); !errors.Is(err, api.ErrNotTrusted) {
		t.Fatalf("Trusted before redeeming: %v", err)
	}
	name, err := s.Redeem(tok.Secret, "fp1", "proposed")
	if err != nil || name != "h1" {
		t.Fatalf("Redeem = %q, %v; want h1", name, err)
	}
	if got, err := s.Trusted("fp1"); err != nil || got != "h1" {
		t.Fatalf("Trusted = %q, %v", got, err)
	}
	if _, err := s.Redeem(tok.Secret, "fp2", ""); !errors.Is(err, api.ErrTokenUsed) {
		t.Fatalf("second use: %v, want token-used", err)
	}
	if _, err := s.Redeem("wrong", "fp2", ""); !errors.Is(err, api.ErrTokenUnknown) {
		t.Fatalf("wrong secret: %v, want token-unknown", err)
	}
	if l, _ := s.List(); len(l.Tokens) != 0 || len(l.Clients) != 1 {
		t.Fatalf("list after redeeming: %+v", l)
	}
	if _, err := s.AddToken("h1", time.Hour, hostFP); !errors.Is(err, manager.ErrExists) {
		t.Fatalf("a token named as a trusted client: %v, want exists", err)
	}
	if err := s.Remove("h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Trusted("fp1"); !errors.Is(err, api.ErrNotTrusted) {
		t.Fatalf("Trusted after remove: %v", err)
	}
	if err := s.Remove("h1"); !errors.Is(err, manager.ErrNotFound) {
		t.Fatalf("second remove: %v, want not found", err)
	}
}

func TestTokenExpires(t *testing.T) {
	s := Open(t.TempDir())
	tok, err := s.AddToken("", time.Hour, hostFP)
	if err != nil {
		t.Fatal(err)
	}
	// Age the stored token rather than wait for it.
	s.change(func(st *state) error {
		st.Tokens[0].Expires = time.Now().Add(-time.Second)
		return nil
	})
	if _, err := s.Redeem(tok.Secret, "fp1", ""); !errors.Is(err, api.ErrTokenExpired) {
		t.Fatalf("expired token: %v, want token-expired", err)
	}
	if l, _ := s.List(); len(l.Tokens) != 0 {
		t.Fatalf("an expired token listed as pending: %+v", l)
	}
}

func TestUnnamedTokensTakeTheProposedName(t *testing.T) {
	s := Open(t.TempDir())
	var names []string
	for i, proposed := range []string{"h1", "h1", "bad name!", ""} {
		tok, _ := s.AddToken("", time.Hour, hostFP)
		name, err := s.Redeem(tok.Secret, "fp"+strings.Repeat("x", i), proposed)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if strings.Join(names, " ") != "h1 h1-2 client client-2" {
		t.Fatalf("names %v", names)
	}
	tok, _ := s.AddToken("", time.Hour, hostFP)
	if _, err := s.Redeem(tok.Secret, "fp", ""); !errors.Is(err, manager.ErrExists) {
		t.Fatalf("a trusted certificate redeemed again: %v", err)
	}
	if _, err := s.AddToken("", 0, hostFP); !errors.Is(err, manager.ErrInvalid) {
		t.Fatalf("zero expiry: %v", err)
	}
	if _, err := s.AddToken("-x", time.Hour, hostFP); !errors.Is(err, manager.ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
}
