// Package manpage writes manual pages in roff with the man(7) macros. The
// agents describe themselves in Go (their meta-data comes from the same
// tables), so their pages are generated from those tables at package build
// time rather than kept as a second, drifting copy.
package manpage
