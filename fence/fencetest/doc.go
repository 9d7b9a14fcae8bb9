// Package fencetest checks what every fence agent must get right, for the
// agents' tests: metadata valid against fence-agents' metadata.rng.
package fencetest
