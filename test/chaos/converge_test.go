package chaos

import "testing"

const staleOnly = `rampart status on n2:
Pacemaker   quorate, DC n3, 4 of 4 nodes online (Pacemaker 2.1.5-a3f44794f94)
PostgreSQL  resource pgsql (ocf:rampart:pgsql), primary n2, sync_count=1 sync_policy=durability

Problems:
  - n2 last reported its position 91 s ago: its monitor is not running
  - n3 last reported its position 112 s ago: its monitor is not running
`

const offline = staleOnly + `  - n1 is offline (not a cluster member): start it, or fence and repair it
`

func TestConverged(t *testing.T) {
	tests := []struct {
		name string
		code int
		out  string
		want bool
	}{
		{"exit 0 is converged", 0, "No problems found.", true},
		{"stale positions are not converged (the agent's monitors report every time)", exitProblems, staleOnly, false},
		{"a node offline is not converged", exitProblems, offline, false},
		{"exit 2 without a problem list is not converged", exitProblems, "garbled", false},
		{"status that could not read the cluster is not converged", 1, "status: neither Pacemaker nor a pooler could be read here", false},
		{"status that did not run is not converged", -1, "host n1 is down", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, why := Converged(tt.code, tt.out); got != tt.want {
				t.Errorf("Converged(%d, …) = %v (%s), want %v", tt.code, got, why, tt.want)
			}
		})
	}
	if _, why := Converged(exitProblems, staleOnly); why != "n2 last reported its position 91 s ago: its monitor is not running" {
		t.Errorf("reason %q, want the first problem listed", why)
	}
}
