// Package admin is the pooler's console language: the commands an operator
// sends to the admin database on the pooler's port (PgBouncer's SHOW …,
// PAUSE, RESUME, RELOAD, plus rampart's SHOW NODES, DRAIN, DETACH,
// ATTACH), parsed into values. Executing them is the proxy's business.
package admin
