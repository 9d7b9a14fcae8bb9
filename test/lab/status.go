package lab

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/rampart-ha/rampart/fence/ipmi"
	"github.com/rampart-ha/rampart/ra/pacemaker"
)

// Status is a snapshot of a lab, for people (`rampart lab status`) and tests.
type Status struct {
	ID        string
	Dir       string
	Subnet    string
	Mgmt      string // management network (BMCs); "" without BMCs
	Created   time.Time
	Partition [][]string
	Hosts     []HostStatus
	// Cluster and Options are read on the first database host that answers.
	ClusterFrom string
	Cluster     pacemaker.ClusterStatus
	ClusterErr  string
	Options     map[string]string
}

// HostStatus is one host in a Status.
type HostStatus struct {
	Name       string
	Role       Role
	Addr       string
	Condition  string // running, frozen, crashed; "+ link cut" when cut
	Processes  int
	PSSKiB     int
	Members    []string // Corosync membership this host sees
	MembersErr string
	PG         PGState
}

// Status observes the lab. Hosts are observed in parallel, each under a short
// deadline, so a frozen host costs seconds, not a hang.
func (l *Lab) Status(ctx context.Context) Status {
	st := l.current()
	s := Status{ID: l.cfg.ID, Dir: l.cfg.Dir(), Subnet: l.cfg.Subnet.String(), Created: st.Created, Partition: st.Partition}
	if l.cfg.fences() {
		s.Mgmt = l.cfg.Management.String()
	}
	hosts := l.Hosts()
	s.Hosts = make([]HostStatus, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Hosts[i] = l.hostStatus(ctx, st, h)
		}()
	}
	wg.Wait()
	for _, h := range s.Hosts {
		if h.Role != RoleDatabase || h.Condition != "running" {
			continue
		}
		c, err := l.Cluster(ctx, h.Name)
		if err != nil {
			s.ClusterErr = err.Error()
			continue
		}
		s.ClusterFrom, s.Cluster, s.ClusterErr = h.Name, c, ""
		if opts, err := l.ClusterOptions(ctx, h.Name); err == nil {
			s.Options = opts
		}
		break
	}
	return s
}

func (l *Lab) hostStatus(ctx context.Context, st State, h Host) HostStatus {
	hs := HostStatus{Name: h.Name, Role: h.Role, Addr: h.Addr.String(), Condition: "running"}
	switch {
	case st.Crashed[h.Name]:
		hs.Condition = "crashed"
	case st.Frozen[h.Name]:
		hs.Condition = "frozen"
	}
	if st.Cut[h.Name] {
		hs.Condition += " + link cut"
	}
	if st.BMCDown[h.Name] {
		hs.Condition += " + BMC down"
	}
	if st.WALHeld[h.Name] {
		hs.Condition += " + WAL held"
	}
	if pct := st.Lossy[h.Name]; pct > 0 {
		hs.Condition += fmt.Sprintf(" + %d %% packet loss", pct)
	}
	if kbit := st.Throttled[h.Name]; kbit > 0 {
		hs.Condition += fmt.Sprintf(" + link throttled to %d kbit/s", kbit)
	}
	if procs, err := procsInNamespace(l.cfg.hostNamespace(h.Name)); err == nil {
		hs.Processes, hs.PSSKiB = len(procs), pssKiB(procs)
	}
	if h.Role != RoleDatabase || st.Crashed[h.Name] {
		return hs
	}
	if m, err := l.Members(ctx, h.Name); err != nil {
		hs.MembersErr = "no answer"
	} else {
		hs.Members = m
	}
	qctx, cancel := context.WithTimeout(ctx, observeTimeout)
	defer cancel()
	hs.PG = l.Postgres(qctx, h.Name)
	return hs
}

// Format writes s for people.
func (s Status) Format(w io.Writer) {
	fmt.Fprintf(w, "lab %s  (folder %s, subnet %s, up since %s)\n", s.ID, s.Dir, s.Subnet, s.Created.Local().Format(time.DateTime))
	if s.Mgmt != "" {
		fmt.Fprintf(w, "management network %s: a BMC per database host at .2NN, fenced with %s\n", s.Mgmt, ipmi.Name)
	}
	if s.Partition != nil {
		fmt.Fprintf(w, "PARTITIONED: %s\n", formatGroups(s.Partition))
	}
	fmt.Fprintln(w, "\nhosts")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  HOST\tADDRESS\tROLE\tSTATE\tPROCS\tPSS\tCOROSYNC SEES\tPOSTGRESQL")
	totalKiB, totalProcs := 0, 0
	for _, h := range s.Hosts {
		members := "-"
		if h.Role == RoleDatabase && !strings.HasPrefix(h.Condition, "crashed") {
			members = h.MembersErr
			if h.MembersErr == "" {
				members = strings.Join(h.Members, ",")
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%d MiB\t%s\t%s\n", h.Name, h.Addr, h.Role, h.Condition,
			h.Processes, h.PSSKiB/1024, members, pgSummary(h))
		totalKiB += h.PSSKiB
		totalProcs += h.Processes
	}
	tw.Flush()
	fmt.Fprintf(w, "  all hosts: %d processes, %d MiB PSS\n", totalProcs, totalKiB/1024)

	fmt.Fprintln(w, "\nreplication")
	for _, h := range s.Hosts {
		if h.PG.Role() != "primary" {
			continue
		}
		if len(h.PG.Replication) == 0 {
			fmt.Fprintf(w, "  %s (primary): no standby connected\n", h.Name)
		}
		for _, r := range h.PG.Replication {
			fmt.Fprintf(w, "  %s -> %s (%s): %s, %s, replayed %s\n", h.Name, r.Name, r.Addr, r.State, r.SyncState, r.ReplayLSN)
		}
	}

	fmt.Fprintln(w, "\npacemaker")
	if s.ClusterFrom == "" {
		fmt.Fprintf(w, "  no database host answers: %s\n", s.ClusterErr)
	} else {
		c := s.Cluster
		fmt.Fprintf(w, "  seen from %s: DC %s, quorum %s, online %s (%d of %d nodes), Pacemaker %s\n",
			s.ClusterFrom, orNone(c.DC), yesNo(c.Quorate), strings.Join(c.Online(), ","), len(c.Online()), len(c.Nodes), c.Version)
	}
	fmt.Fprintln(w, "  cluster options set by the lab (live values from the CIB):")
	for _, o := range ClusterOptions() {
		live, ok := s.Options[o.Name]
		if !ok {
			live = "(not read)"
		}
		note := ""
		if o.Name == "stonith-enabled" && live == "false" {
			note = "  <- no fencing yet: the lab has no fence devices (a later issue adds them)"
		}
		fmt.Fprintf(w, "    %s=%s%s\n", o.Name, live, note)
	}
}

func pgSummary(h HostStatus) string {
	switch {
	case h.Role != RoleDatabase:
		return "-"
	case strings.HasPrefix(h.Condition, "crashed"):
		return "down"
	case !h.PG.Up:
		return "no answer"
	case h.PG.InRecovery:
		recv := "no walreceiver"
		if h.PG.Receiver != nil {
			recv = h.PG.Receiver.Status + " from " + h.PG.Receiver.Sender
		}
		return fmt.Sprintf("standby, timeline %d, replayed %s, %s", h.PG.Timeline, h.PG.LSN, recv)
	default:
		return fmt.Sprintf("primary, timeline %d, at %s, %d standbys", h.PG.Timeline, h.PG.LSN, len(h.PG.Replication))
	}
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
