package lab

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/ra/pacemaker"
)

// Each observation has its own short deadline: a frozen host must make an
// observation fail, not hang it.
const observeTimeout = 4 * time.Second

// Members returns the names of the Corosync members that host sees, sorted.
func (l *Lab) Members(ctx context.Context, host string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, observeTimeout)
	defer cancel()
	out, err := l.runIn(ctx, host, "", "corosync-cmapctl", "-b", "runtime.members")
	if err != nil {
		return nil, fmt.Errorf("corosync members seen by %s: %w", host, err)
	}
	byID := map[int]string{}
	for _, h := range l.cfg.Hosts() {
		byID[h.NodeID] = h.Name
	}
	var names []string
	for _, id := range parseMembers(out) {
		name, ok := byID[id]
		if !ok {
			name = fmt.Sprintf("nodeid-%d", id)
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// Cluster returns Pacemaker's view from host.
func (l *Lab) Cluster(ctx context.Context, host string) (pacemaker.ClusterStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, observeTimeout)
	defer cancel()
	return pacemaker.CrmMon(ctx, l.runner(host))
}

// ClusterOptions returns the cluster options of the live CIB, read on host.
func (l *Lab) ClusterOptions(ctx context.Context, host string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, observeTimeout)
	defer cancel()
	return pacemaker.ClusterOptions(ctx, l.runner(host))
}

// runner runs Pacemaker's tools inside host.
func (l *Lab) runner(host string) pacemaker.Runner {
	return func(ctx context.Context, argv ...string) (string, error) {
		return l.runIn(ctx, host, "", argv...)
	}
}

const pollEvery = 200 * time.Millisecond

// WaitMembers waits until each of the observers sees exactly want as its
// Corosync membership.
func (l *Lab) WaitMembers(ctx context.Context, observers, want []string) error {
	want = slices.Sorted(slices.Values(want))
	return WaitFor(ctx, fmt.Sprintf("corosync membership %v seen by %v", want, observers), pollEvery,
		func(ctx context.Context) (bool, string, error) {
			var seen []string
			ok := true
			for _, o := range observers {
				got, err := l.Members(ctx, o)
				if err != nil {
					seen = append(seen, fmt.Sprintf("%s: %v", o, err))
					ok = false
					continue
				}
				seen = append(seen, fmt.Sprintf("%s sees %v", o, got))
				ok = ok && slices.Equal(got, want)
			}
			return ok, strings.Join(seen, "; "), nil
		})
}

// WaitClusterOnline waits until every host in hosts reports a quorate
// Pacemaker cluster with a DC and exactly those nodes online.
func (l *Lab) WaitClusterOnline(ctx context.Context, hosts []string) error {
	want := slices.Sorted(slices.Values(hosts))
	return WaitFor(ctx, fmt.Sprintf("pacemaker quorate with %v online", want), pollEvery,
		func(ctx context.Context) (bool, string, error) {
			var seen []string
			ok := true
			for _, h := range hosts {
				s, err := l.Cluster(ctx, h)
				if err != nil {
					seen = append(seen, fmt.Sprintf("%s: %v", h, err))
					ok = false
					continue
				}
				online := slices.Sorted(slices.Values(s.Online()))
				seen = append(seen, fmt.Sprintf("%s: dc=%q quorate=%v online=%v", h, s.DC, s.Quorate, online))
				ok = ok && s.DC != "" && s.Quorate && slices.Equal(online, want)
			}
			return ok, strings.Join(seen, "; "), nil
		})
}

// WaitStreaming waits until primary's pg_stat_replication shows each of the
// standbys streaming.
func (l *Lab) WaitStreaming(ctx context.Context, primary string, standbys []string) error {
	return l.waitReplicas(ctx, fmt.Sprintf("%v streaming from %s", standbys, primary), primary, standbys,
		func(_ PGState, r Replica) (bool, string) { return r.State == "streaming", r.Name + ":" + r.State })
}

// WaitCaughtUp waits until every standby has replayed everything the
// primary has written (replay_lsn = pg_current_wal_lsn()).
func (l *Lab) WaitCaughtUp(ctx context.Context, primary string, standbys []string) error {
	return l.waitReplicas(ctx, fmt.Sprintf("%v to replay all of %s's WAL", standbys, primary), primary, standbys,
		func(p PGState, r Replica) (bool, string) {
			return r.ReplayLSN == p.LSN, r.Name + "@" + r.ReplayLSN + " of " + p.LSN
		})
}

// waitReplicas polls primary's pg_stat_replication until ok holds for the
// row of every one of standbys.
func (l *Lab) waitReplicas(ctx context.Context, what, primary string, standbys []string, ok func(PGState, Replica) (bool, string)) error {
	return WaitFor(ctx, what, pollEvery, func(ctx context.Context) (bool, string, error) {
		qctx, cancel := context.WithTimeout(ctx, observeTimeout)
		defer cancel()
		s := l.Postgres(qctx, primary)
		if !s.Up {
			return false, s.Error, nil
		}
		good := map[string]bool{}
		var seen []string
		for _, r := range s.Replication {
			var note string
			good[r.Name], note = ok(s, r)
			seen = append(seen, note)
		}
		state := "pg_stat_replication: " + strings.Join(seen, " ")
		for _, sb := range standbys {
			if !good[sb] {
				return false, state, nil
			}
		}
		return true, state, nil
	})
}

// Primary names the node where Pacemaker promotes the agent's resource,
// asked of any running database host; an error when none, or more than
// one, is promoted as far as any host can tell.
func (l *Lab) Primary(ctx context.Context) (string, error) {
	var last error
	for _, h := range l.DBHosts() {
		if l.Crashed(h) {
			continue
		}
		st, err := l.Cluster(ctx, h)
		if err != nil {
			last = err
			continue
		}
		if p := st.Promoted(PgsqlResource); len(p) == 1 {
			return p[0], nil
		}
	}
	return "", fmt.Errorf("no primary: %v", last)
}

// CorosyncStats returns host's Corosync counters whose keys start with
// prefix (`corosync-cmapctl -m stats`: stats.srp.operational_entered counts
// the memberships this node formed, stats.srp.operational_token_lost the
// tokens it lost, stats.knet.nodeN.link0.down_count its link losses).
func (l *Lab) CorosyncStats(ctx context.Context, host, prefix string) (map[string]uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, observeTimeout)
	defer cancel()
	out, err := l.runIn(ctx, host, "", "corosync-cmapctl", "-m", "stats", prefix)
	if err != nil {
		return nil, fmt.Errorf("corosync stats of %s: %w", host, err)
	}
	return parseCmapCounters(out), nil
}

// parseCmapCounters reads lines of `key (type) = value`, keeping those
// whose value is a number.
func parseCmapCounters(out string) map[string]uint64 {
	stats := map[string]uint64{}
	for _, line := range strings.Split(out, "\n") {
		key, rest, ok := strings.Cut(line, " (")
		if !ok {
			continue
		}
		_, value, ok := strings.Cut(rest, ") = ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(value), 10, 64); err == nil {
			stats[strings.TrimSpace(key)] = n
		}
	}
	return stats
}
