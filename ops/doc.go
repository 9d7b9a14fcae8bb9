// Package ops holds what an operator runs against a whole cluster: its
// status in one view, a planned switchover, rejoining a failed primary, and
// base backups. Each decides in pure functions (observations in, a view,
// a verdict or a refusal out) and acts through thin shells around
// Pacemaker's tools and PostgreSQL's.
package ops
