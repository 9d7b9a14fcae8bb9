// Package deps holds the test that keeps the package map (README, Layout;
// ARCHITECTURE.md) honest: which rampart packages may import which. It has
// no code of its own.
package deps
