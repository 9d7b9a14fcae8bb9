// Package bench holds rampart's benchmarks: each runs rampart and the
// baseline it must beat side by side in one run on this machine, and prints
// medians and ratios (the machine is noisy: single numbers mean little).
// They take minutes and run only under `make bench` (RAMPART_BENCH=1).
package bench
