// Command rampart is rampart's one binary: the operators' CLI, the lab, and
// (later) the OCF resource agents and fence agents, chosen by the name it is
// invoked under or by its first argument. It is thin: it builds the
// configuration, logger and signal context, calls a package, and turns the
// error into an exit code in one place (main). It makes no decisions.
package main
