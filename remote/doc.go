// Package remote is lodge's host API: hosts that talk to each other over
// HTTPS with mutual TLS. It holds no code; its packages are
//
//	remote/api     the wire: versioned paths, messages, error kinds, names
//	remote/pki     host and client certificates, their SHA-256 fingerprints
//	remote/trust   one-time tokens and the trust store of a serving host
//	remote/server  lodge serve: authentication and the manager's operations
//	remote/client  the remotes a host knows (ROOT/remotes) and their client
//
// The server calls package manager as a library; the commands (cmd/lodge)
// call remote/client for a container named REMOTE:NAME.
package remote
