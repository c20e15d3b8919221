// Package api is the wire of lodge's host API, shared by its server and
// client: the versioned paths, the messages, and the error kinds that carry
// the manager's errors across so that a remote command exits as a local one.
//
// Every request is JSON over HTTPS with mutual TLS, under Prefix. Every
// response body is a stream of JSON lines (Line): any number of progress
// lines, then exactly one line with the result or the error. A new manager
// operation is added the same way as those here: a Route constant and its
// request and result types here, a handler in package server (registered
// with authenticated), a method in package client that calls the route.
package api

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"lodge/internal/events"
)

// Version is the API's version; Prefix is the path every route is under.
const (
	Version = "1.0"
	Prefix  = "/" + Version
)

// Routes, as net/http patterns (METHOD PATH; {name} is a container's name).
const (
	RouteServer = "GET " + Prefix                               // ServerInfo
	RouteRedeem = "POST " + Prefix + "/certificates"            // RedeemRequest -> RedeemResult (the only unauthenticated route)
	RouteList   = "GET " + Prefix + "/containers"               // -> []manager.Info
	RouteInfo   = "GET " + Prefix + "/containers/{name}"        // -> manager.Info
	RouteStart  = "POST " + Prefix + "/containers/{name}/start" // StartRequest -> Empty
	RouteStop   = "POST " + Prefix + "/containers/{name}/stop"  // StopRequest -> StopResult
)

// The target's side of a migration (manager.MigrationTarget), in the order
// the source calls them. The Receive routes take a stream as the request's
// body (a tree stream, migrate.SendTree), read as it comes; the others JSON.
// The calls up to RouteMigrationRestore reach the one Manager the server
// keeps for migrations (it holds the incoming migration in memory).
const (
	RouteMigrationPreflight  = "POST " + Prefix + "/migrations/{name}"                // manager.MigrationOffer -> manager.MigrationAnswer
	RouteMigrationLayer      = "POST " + Prefix + "/migrations/{name}/layers/{layer}" // tree stream -> Empty
	RouteMigrationRootfs     = "POST " + Prefix + "/migrations/{name}/rootfs"         // tree stream -> Empty
	RouteMigrationCheckpoint = "POST " + Prefix + "/migrations/{name}/checkpoint"     // tree stream -> Empty
	RouteMigrationRestore    = "POST " + Prefix + "/migrations/{name}/restore"        // -> manager.MigrationRestored
	RouteMigrationCommit     = "POST " + Prefix + "/migrations/{name}/commit"         // -> Empty
	RouteMigrationAbort      = "POST " + Prefix + "/migrations/{name}/abort"          // -> Empty
)

// The target's side of a copy from another host (manager.CopyTarget). A
// copy is received as an incoming migration, by the same Manager as the
// migration routes; its Abort and Commit are RouteMigrationAbort and
// RouteMigrationCommit. Its streams have routes of their own: a failed
// receive removes a copy there, never a migration.
const (
	RouteCopyPreflight = "POST " + Prefix + "/copies/{name}"                // manager.CopyOffer -> manager.CopyAnswer
	RouteCopyLayer     = "POST " + Prefix + "/copies/{name}/layers/{layer}" // tree stream -> Empty
	RouteCopyRootfs    = "POST " + Prefix + "/copies/{name}/rootfs"         // tree stream -> Empty
	RouteCopySnapshots = "POST " + Prefix + "/copies/{name}/snapshots"      // tree stream -> Empty
	RouteCopyFinish    = "POST " + Prefix + "/copies/{name}/finish"         // -> manager.CopyPlaced
	// RouteCopyOut has the host copy one of its containers to the caller
	// (lodge copy REMOTE:NAME NEW): to the host it has as a remote whose
	// pinned certificate is the one the caller names, through that host's
	// lodge serve.
	RouteCopyOut = "POST " + Prefix + "/containers/{name}/copy" // CopyOutRequest -> manager.CopyToResult

	// RouteEvents streams the host's events (package events) as they
	// happen, one Line with Event each, until the client goes away; its
	// query is EventsQuery's. It never sends a result: only an error ends
	// it from the server's side.
	RouteEvents = "GET " + Prefix + "/events"
)

// EventsQuery is RouteEvents' query: since (RFC 3339; absent: from now),
// type and container, each repeatable (absent: all).
const (
	EventsSince     = "since"
	EventsType      = "type"
	EventsContainer = "container"
)

// CopyOutRequest asks for a copy of a container to the calling host.
type CopyOutRequest struct {
	Name        string `json:"name"`        // the copy's name on the calling host
	Fingerprint string `json:"fingerprint"` // the calling host's certificate (lodge serve's)
}

// Request gives a route's method and path, with name in place of {name}:
// the client calls a route by the same constant the server serves it by.
func Request(route, name string) (method, path string) {
	method, path, _ = strings.Cut(route, " ")
	return method, strings.Replace(path, "{name}", url.PathEscape(name), 1)
}

// RequestLayer is Request for a layer route (RouteMigrationLayer,
// RouteCopyLayer): name and the layer's id.
func RequestLayer(route, name, layer string) (method, path string) {
	method, path = Request(route, name)
	return method, strings.Replace(path, "{layer}", url.PathEscape(layer), 1)
}

// Line is one line of a response: a progress message, the result, or the error.
type Line struct {
	Progress string `json:"progress,omitempty"`
	Result   any    `json:"result,omitempty"`
	Error    *Error `json:"error,omitempty"`
	// Event is one event of RouteEvents' stream.
	Event *events.Event `json:"event,omitempty"`
}

// Error is a failure as the server reports it: the manager's error kind
// (see Kinds) and its message.
type Error struct {
	Kind    string `json:"kind,omitempty"`
	Message string `json:"message"`
}

// ServerInfo describes a serving host.
type ServerInfo struct {
	API         string `json:"api"`
	Version     string `json:"version"` // lodge's
	Fingerprint string `json:"fingerprint"`
	Client      string `json:"client"` // the name this host trusts the caller as
}

// RedeemRequest presents a token's secret; the client's certificate is the
// one the TLS connection carries.
type RedeemRequest struct {
	Secret string `json:"secret"`
	// ClientName is the name the client proposes (its hostname), used when
	// the token was made without --name.
	ClientName string `json:"client_name,omitempty"`
}

// RedeemResult says under which name the server now trusts the client.
type RedeemResult struct {
	Name        string `json:"name"`
	Fingerprint string `json:"fingerprint"` // the client certificate's
}

// StartRequest asks for a start; Fresh boots even after a stateful stop.
type StartRequest struct {
	Fresh bool `json:"fresh,omitempty"`
}

// StopRequest mirrors manager.StopOptions.
type StopRequest struct {
	TimeoutMillis int64 `json:"timeout_ms,omitempty"`
	Force         bool  `json:"force,omitempty"`
}

// StopResult mirrors manager.StopResult.
type StopResult struct {
	Killed bool `json:"killed"`
}

// Empty is the result of an operation that returns nothing.
type Empty struct{}

// CheckName checks a remote's or a trusted client's name: letters, digits
// and dashes, starting with a letter, 1-63 characters (a hostname label).
func CheckName(what, name string) error {
	ok := name != "" && len(name) <= 63 && isLetter(name[0]) && name[len(name)-1] != '-'
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = isLetter(c) || c >= '0' && c <= '9' || c == '-'
	}
	if !ok {
		return invalid(fmt.Errorf("invalid %s name %q: use letters, digits and dashes, 1-63 characters, starting with a letter", what, name))
	}
	return nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// DefaultPort is the port of an address given without one, to lodge serve
// --listen and lodge remote add alike.
const DefaultPort = "8443"

// HostPort adds DefaultPort to an address without a port.
func HostPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	return net.JoinHostPort(strings.Trim(addr, "[]"), DefaultPort)
}
