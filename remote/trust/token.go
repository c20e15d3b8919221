// Package trust is a serving host's trust store: the clients it trusts (by
// their certificate's SHA-256 fingerprint) and the one-time tokens that add
// one. A token carries the host certificate's fingerprint, a random secret
// and its expiry; the store keeps only the secret's hash.
package trust

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"lodge/remote/api"
)

// Token is what `lodge trust add` prints and `lodge remote add` presents.
type Token struct {
	// Fingerprint is the host certificate's: the client checks it before
	// sending anything.
	Fingerprint string    `json:"fingerprint"`
	Secret      string    `json:"secret"`
	Expires     time.Time `json:"expires"`
}

// tokenPrefix tells a lodge token from anything else pasted by mistake.
const tokenPrefix = "lodge1."

// Encode is the token as one word: a prefix and base64url of its JSON.
func (t Token) Encode() string {
	data, _ := json.Marshal(t)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(data)
}

// DecodeToken reads a token that Encode made.
func DecodeToken(s string) (Token, error) {
	var t Token
	bad := func(why string) (Token, error) {
		return Token{}, api.Mark(fmt.Errorf("the token is not one lodge trust add printed (%s); copy it whole", why), api.ErrTokenUnknown)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), tokenPrefix)
	if !ok {
		return bad("it does not start with " + tokenPrefix)
	}
	data, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return bad("not base64url")
	}
	if err := json.Unmarshal(data, &t); err != nil {
		return bad("not its JSON")
	}
	if len(t.Fingerprint) != 64 || t.Secret == "" {
		return bad("a fingerprint or the secret is missing")
	}
	return t, nil
}

// newSecret is 32 random bytes, base64url.
func newSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashSecret is what the store keeps of a secret.
func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
