// Package pki makes and loads the certificates of lodge's host API: a
// host's (the server's) and the client certificate a host keeps for each
// remote. Both are self-signed ECDSA P-256 certificates; nobody checks a
// chain: each side pins the other's SHA-256 fingerprint (the trust store on
// the server, the remote's record on the client).
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"lodge/internal/atomicfile"
)

// File names of a certificate directory.
const (
	CertFile = "cert.pem"
	KeyFile  = "key.pem" // mode 0600
)

// Lifetime of the certificates lodge makes: a host's identity is its
// fingerprint, pinned by its peers, so it must not need renewing.
const Lifetime = 20 * 365 * 24 * time.Hour

// Fingerprint is the SHA-256 of a certificate's DER bytes, in lowercase hex.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// Pair is a certificate with its key, ready for crypto/tls.
type Pair struct {
	TLS         tls.Certificate
	Fingerprint string
}

// New makes a self-signed certificate and key for commonName.
func New(commonName string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName, Organization: []string{"lodge"}},
		NotBefore:             now.Add(-time.Hour), // a peer whose clock is a little behind
		NotAfter:              now.Add(Lifetime),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// Write puts a certificate and its key into dir (made 0700), the key 0600.
func Write(dir string, certPEM, keyPEM []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dir, KeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(dir, CertFile), certPEM, 0o644)
}

// Load reads the certificate and key in dir.
func Load(dir string) (Pair, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		return Pair{}, fmt.Errorf("load the certificate in %s: %w", dir, err)
	}
	return Pair{TLS: cert, Fingerprint: Fingerprint(cert.Certificate[0])}, nil
}

// LoadOrCreate loads the certificate in dir, or makes one for commonName
// if dir does not exist. Two callers racing (lodge serve and lodge trust
// add) end with the same certificate: each writes into a directory of its
// own and renames it to dir; the loser loads the winner's.
func LoadOrCreate(dir, commonName string) (Pair, error) {
	if _, err := os.Stat(dir); err == nil {
		return Load(dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Pair{}, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o711); err != nil {
		return Pair{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".new-")
	if err != nil {
		return Pair{}, err
	}
	defer os.RemoveAll(tmp) // gone after the rename, or the loser's
	certPEM, keyPEM, err := New(commonName)
	if err == nil {
		err = Write(tmp, certPEM, keyPEM)
	}
	if err == nil {
		err = atomicfile.SyncDir(tmp)
	}
	if err != nil {
		return Pair{}, fmt.Errorf("make a certificate in %s: %w", dir, err)
	}
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, fs.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		return Pair{}, err
	}
	atomicfile.SyncDir(filepath.Dir(dir))
	return Load(dir)
}
