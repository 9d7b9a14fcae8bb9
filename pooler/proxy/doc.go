// Package proxy speaks PostgreSQL's wire protocol (pgx's pgproto3) to
// clients and servers: client start-up and SCRAM-SHA-256 authentication
// against an auth file, server connections made and authenticated by
// pgconn then driven directly, and the session loop that sends each
// transaction (and each extended-protocol batch up to Sync) to one server
// chosen by pooler/route.
//
// A session (session.go) speaks the protocol; for each transaction it
// asks the proxy for a server connection and gives it back
// (dispatch.go), and the proxy alone holds the nodes' view, the pools,
// the pause and the per-node counts under its mutex.
//
// It owns sockets and bytes; decisions are route's. It must not know the
// cluster agent (ra/ocf, ra/pacemaker, ra/pgsql).
package proxy
