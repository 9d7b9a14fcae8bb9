// Package pool keeps server connections for reuse, generic over the
// connection: a Pool bounds how many of one kind exist (a node, a
// database, a user), busy or idle, and hands idle ones out last in, first
// out, each checked before reuse; a Set holds the pools by key and forgets
// one that holds nothing. How a connection is made, checked and closed is
// the caller's (the proxy's), passed in.
package pool
