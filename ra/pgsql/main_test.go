package pgsql

import (
	"os/user"
	"slices"
	"strconv"
	"testing"
)

func TestGroupIDs(t *testing.T) {
	if got, want := groupIDs([]string{"120", "110", "120", "x", "114", "110"}), []uint32{120, 110, 114}; !slices.Equal(got, want) {
		t.Errorf("groupIDs = %v; want %v", got, want)
	}
}

// The agent runs PostgreSQL with the system user's supplementary groups,
// as a login would: Debian's postgres reads its TLS key through ssl-cert.
func TestGroupsOfHasSupplementaryGroups(t *testing.T) {
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skip("no postgres user here:", err)
	}
	own, err := u.GroupIds()
	if err != nil || len(own) < 2 {
		t.Skipf("postgres has no supplementary group here (%v %v)", own, err)
	}
	got := groupsOf(u)
	for _, s := range own {
		id, _ := strconv.ParseUint(s, 10, 32)
		if !slices.Contains(got, uint32(id)) {
			t.Errorf("groupsOf(postgres) = %v: lacks postgres's group %s", got, s)
		}
	}
}
