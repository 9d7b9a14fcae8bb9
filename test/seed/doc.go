// Package seed reproduces the 2013 field test's seven experiments (pgpool-II
// with streaming replication, the test that started the project) on the
// lab, under a steady mixed read/write load from the client host, and answers each question the test
// asked (did the service continue, how long until full service, client
// errors, lost commits) next to the 2013 figure, with a throughput-over-time
// plot per experiment and a Markdown report. `rampart lab seed` runs it.
//
// series.go, plot.go and report.go are pure (counts in, figures, SVG and
// Markdown out); load.go and experiments.go drive the lab. Like the lab it
// must not import package testing.
package seed
