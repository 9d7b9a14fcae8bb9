// Package pgxsuite runs pgx's own test suite (the pgx version in go.mod)
// against PostgreSQL directly, through PgBouncer and through rampart's
// pooler, in session and transaction mode, and compares the results: the
// tests that pass directly and through PgBouncer but fail through rampart
// are the pooler's protocol defects (issue 17).
//
// Its non-test files hold the pure part: reading `go test -json`
// streams, counting, comparing, and the report. The servers and the runs
// are in suite_test.go, which runs only as root with RAMPART_PGX_SUITE=1
// (make pgx-suite); it takes about 40 minutes on two cores, most of it
// waiting out the hangs through rampart.
package pgxsuite
