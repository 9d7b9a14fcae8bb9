package ops

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Format writes the view for people.
func (v View) Format(w io.Writer) error {
	if c := v.Pacemaker; c != nil {
		online := 0
		for _, n := range v.Nodes {
			if n.Pacemaker == "online" {
				online++
			}
		}
		quorum := "quorate"
		if !c.Quorate {
			quorum = "NO QUORUM"
		}
		fmt.Fprintf(w, "Pacemaker   %s, DC %s, %d of %d nodes online (Pacemaker %s)\n", quorum, orNone(c.DC), online, len(v.Nodes), c.Version)
	}
	if v.Pacemaker == nil && v.Source != "" {
		fmt.Fprintf(w, "Nodes       as %s sees them (no Pacemaker here), primary %s\n", v.Source, orNone(v.Primary))
	}
	if v.Resource != "" {
		fmt.Fprintf(w, "PostgreSQL  resource %s (ocf:rampart:pgsql), primary %s, %s\n", v.Resource, orNone(v.Primary), v.syncText())
	}
	if r := v.Synced; r != nil && !v.asynchronous() {
		fmt.Fprintf(w, "Durable     every acknowledged commit is on %s (timeline %d)\n", strings.Join(append([]string{r.Primary + " (primary)"}, r.Standbys...), ", "), r.Timeline)
	}
	if v.Preferred != "" {
		fmt.Fprintf(w, "Preferred   %s is asked for as the synchronous standby (rampart switchover sets it for a failback)\n", v.Preferred)
	}
	if len(v.Nodes) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tPACEMAKER\tROLE\tSTATE\tTIMELINE\tLSN\tLAG\tREPORTED")
		for _, n := range v.Nodes {
			tl, lag, ago := "-", "-", "-"
			if n.Timeline > 0 {
				tl = fmt.Sprint(n.Timeline)
			}
			if n.LagBytes != nil {
				lag = Bytes(*n.LagBytes)
			}
			if n.ReportedAgo != nil {
				ago = fmt.Sprintf("%.0fs ago", *n.ReportedAgo)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, n.Pacemaker, n.Role, orDash(n.State), tl, orDash(n.LSN), lag, ago)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	for _, vip := range v.VIPs {
		fmt.Fprintf(w, "Address     %s %s (%s) on %s\n", vip.ID, vip.IP, vip.Agent, orNone(strings.Join(vip.Nodes, ", ")))
	}
	for _, p := range v.Poolers {
		switch {
		case p.Error != "":
			fmt.Fprintf(w, "Pooler      %s: no answer\n", p.URL)
		case p.Member != "":
			role := "follower"
			if p.Leader {
				role = "LEADER, holds the pooler address"
			}
			fmt.Fprintf(w, "Pooler      %s (%s, term %d): %s; writes to %s\n", p.URL, p.Member, p.Term, role, orNone(p.Primary))
		default:
			fmt.Fprintf(w, "Pooler      %s: writes to %s\n", p.URL, orNone(p.Primary))
		}
	}
	if len(v.Problems) == 0 {
		_, err := fmt.Fprintln(w, "\nNo problems found.")
		return err
	}
	fmt.Fprintln(w, "\nProblems:")
	for _, p := range v.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// syncText says how the resource replicates: sync_count and sync_policy,
// or asynchronous replication; a value the agent refuses as invalid.
func (v View) syncText() string {
	if v.asynchronous() {
		return "asynchronous replication (sync_count=0)"
	}
	count, policy := "sync_count invalid", "sync_policy invalid"
	if v.SyncCount != nil {
		count = fmt.Sprintf("sync_count=%d", *v.SyncCount)
	}
	if v.Policy != "" {
		policy = "sync_policy=" + v.Policy
	}
	if v.Params == nil {
		count, policy = "sync_count unknown", "sync_policy unknown"
	}
	return count + " " + policy
}
