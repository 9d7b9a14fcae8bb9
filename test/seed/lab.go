package seed

import (
	"context"

	"github.com/rampart-ha/rampart/test/lab"
)

// LabConfig is the seed's lab shaped from base (its ID, root, binary):
// four database hosts, so that experiment 4 reads from up to three
// standbys, and the pooler pair with its witness.
func LabConfig(base lab.Config) lab.Config {
	c := base
	c.DBHosts, c.Poolers, c.Witness = 4, 2, true
	return c
}

// Prepare puts the seed's services on lab l, built from LabConfig:
// Pacemaker managing PostgreSQL with ocf:rampart:pgsql (sync_count=1,
// durability, rewind_user so that rejoin rewinds), ocf:rampart:vip on the
// primary, and the pooler pair.
func Prepare(ctx context.Context, l *lab.Lab) error {
	if err := l.ManagePostgres(ctx, lab.PgsqlOptions{"rewind_user": lab.RewindUser}); err != nil {
		return err
	}
	if err := l.AddVIP(ctx, lab.PgsqlResource+"-clone", lab.RampartVIP); err != nil {
		return err
	}
	return l.StartPoolerPair(ctx)
}
