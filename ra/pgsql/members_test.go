package pgsql

import (
	"reflect"
	"testing"

	"github.com/rampart-ha/rampart/ra/pg"
)

// Only the clone's members may be synchronous. A pg_basebackup (rampart
// backup's own) streams too, ahead of everyone: it must not become the
// synchronous standby and push the members to -INFINITY for the whole
// backup. A member's name on two walsenders (someone else with the
// replication credentials took it) counts as disconnected.
func TestOnlyMembersAreSynchronous(t *testing.T) {
	streaming := func(name, sync, flush string) Standby {
		return Standby{Name: name, State: "streaming", SyncState: sync, FlushLSN: lsn(flush)}
	}
	tests := []struct {
		name   string
		in     SyncInput
		want   pg.SyncNames
		scores map[string]int
	}{
		{
			name: "a base backup ahead of every member is no candidate for the set",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/5000000"), Members: []string{"n2", "n3"},
				Standbys: []Standby{streaming("pg_basebackup", "async", "0/5000000"), streaming("n2", "async", "0/4000000"), streaming("n3", "async", "0/3000000")}},
			want:   names(pg.First, 1, "n2"),
			scores: map[string]int{"n1": PrimaryScore, "n2": NoPromotion, "n3": NoPromotion},
		},
		{
			name: "a base backup does not displace the synchronous member",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/5000000"), Members: []string{"n2", "n3"}, Current: names(pg.First, 1, "n2"),
				JoinedAt: map[string]pg.LSN{"n2": lsn("0/1000000")},
				Standbys: []Standby{streaming("pg_basebackup", "async", "0/5000000"), streaming("n2", "sync", "0/4F00000"), streaming("n3", "async", "0/3000000")}},
			want:   names(pg.First, 1, "n2"),
			scores: map[string]int{"n1": PrimaryScore, "n2": SyncScore, "n3": NoPromotion},
		},
		{
			name: "a member's name on two walsenders counts as disconnected: the other member takes its place",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/5000000"), Members: []string{"n2", "n3"}, Current: names(pg.First, 1, "n2"),
				JoinedAt: map[string]pg.LSN{"n2": lsn("0/1000000")},
				Standbys: []Standby{streaming("n2", "sync", "0/5000000"), streaming("n2", "potential", "0/4000000"), streaming("n3", "async", "0/5000000")}},
			want:   names(pg.First, 1, "n3"),
			scores: map[string]int{"n1": PrimaryScore, "n2": NoPromotion, "n3": NoPromotion},
		},
		{
			name: "the primary's own name on a walsender is nobody's",
			in: SyncInput{Self: "n1", PrimaryLSN: lsn("0/5000000"), Members: []string{"n2"},
				Standbys: []Standby{streaming("n1", "async", "0/5000000"), streaming("n2", "async", "0/4000000")}},
			want:   names(pg.First, 1, "n2"),
			scores: map[string]int{"n1": PrimaryScore, "n2": NoPromotion},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := DecideSync(tt.in, durable1)
			if !d.Names.Equal(tt.want) {
				t.Errorf("names %s, want %s (%s)", d.Names, tt.want, d.Reason)
			}
			if got := DecideScores(tt.in, durable1, d); !reflect.DeepEqual(got, tt.scores) {
				t.Errorf("scores %v, want %v", got, tt.scores)
			}
		})
	}
	kept, dropped := ClusterStandbys([]Standby{streaming("pg_basebackup", "async", "0/1"), streaming("n2", "sync", "0/1"), streaming("n2", "async", "0/1"), streaming("n3", "async", "0/1")}, "n1", []string{"n2", "n3"})
	if len(kept) != 1 || kept[0].Name != "n3" || len(dropped) != 2 {
		t.Errorf("ClusterStandbys kept %v, dropped %q", kept, dropped)
	}
}
