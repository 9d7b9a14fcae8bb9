package pacemaker

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"os"
	"os/exec"
	"strings"
)

// Runner runs one command given as an argument vector and returns its
// standard output. Callers choose where it runs (locally, or inside a lab
// host's namespaces); errors must carry the command's stderr.
type Runner func(ctx context.Context, argv ...string) (string, error)

// Local runs argv on this machine. The OCF variables of an agent's
// environment are not passed on: Pacemaker's tools read some of them
// (attrd_updater --query --all answers for OCF_RESKEY_CRM_meta_on_node
// alone), and every call here names its node explicitly.
func Local(ctx context.Context, argv ...string) (string, error) {
	if len(argv) == 0 {
		return "", errors.New("run: empty argument vector")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OCF_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// ClusterStatus is the part of crm_mon's view that rampart acts on.
type ClusterStatus struct {
	DC       string // node name of the designated controller, "" if none
	Quorate  bool   // the partition this node is in has quorum
	Nodes    []Node
	Stack    string // "corosync"
	Version  string // Pacemaker version on the DC
	Resolved bool   // a DC has been elected
	// Resources lists every resource instance, clone instances flattened.
	Resources []Resource
	// Failures are the failed operations Pacemaker remembers (until a
	// cleanup or failure-timeout).
	Failures []Failure
}

// Failure is one failed operation in crm_mon's "Failed Resource Actions".
type Failure struct {
	OpKey      string // "pgsql_monitor_3000", "pgsql_asyncmon_0" (crm_resource --fail)
	Task       string // monitor, start, asyncmon, …
	Node       string
	ExitCode   int
	ExitReason string
}

// Resource is one resource instance as crm_mon reports it.
type Resource struct {
	ID     string // primitive id ("pgsql"); clone instances share it
	Agent  string // class:provider:type, "ocf:rampart:pgsql"
	Clone  string // id of the clone it belongs to, "" if none
	Role   string // Started, Stopped, Promoted, Unpromoted (or Master/Slave)
	Active bool
	Failed bool
	Nodes  []string
}

// Promoted returns the nodes where an instance of resource id runs promoted.
func (s ClusterStatus) Promoted(id string) []string {
	var nodes []string
	for _, r := range s.Resources {
		if r.ID == id && (r.Role == "Promoted" || r.Role == "Master") && r.Active {
			nodes = append(nodes, r.Nodes...)
		}
	}
	return nodes
}

// RunningOn returns the nodes where an instance of resource id is active.
func (s ClusterStatus) RunningOn(id string) []string {
	var nodes []string
	for _, r := range s.Resources {
		if r.ID == id && r.Active {
			nodes = append(nodes, r.Nodes...)
		}
	}
	return nodes
}

// Node is one cluster node as crm_mon reports it.
type Node struct {
	Name     string
	ID       string
	Online   bool
	Standby  bool
	Unclean  bool
	Shutdown bool
	DC       bool
}

// Online returns the names of the nodes that are online, in crm_mon's order.
func (s ClusterStatus) Online() []string {
	var names []string
	for _, n := range s.Nodes {
		if n.Online {
			names = append(names, n.Name)
		}
	}
	return names
}

// CrmMon runs `crm_mon --one-shot --output-as=xml` through run and parses it.
func CrmMon(ctx context.Context, run Runner) (ClusterStatus, error) {
	out, err := run(ctx, "crm_mon", "--one-shot", "--inactive", "--output-as=xml")
	if err != nil {
		return ClusterStatus{}, fmt.Errorf("crm_mon: %w", err)
	}
	return ParseCrmMon([]byte(out))
}

type crmMonXML struct {
	XMLName xml.Name `xml:"pacemaker-result"`
	Summary struct {
		Stack struct {
			Type string `xml:"type,attr"`
		} `xml:"stack"`
		CurrentDC struct {
			Present    string `xml:"present,attr"`
			Version    string `xml:"version,attr"`
			Name       string `xml:"name,attr"`
			WithQuorum string `xml:"with_quorum,attr"`
		} `xml:"current_dc"`
	} `xml:"summary"`
	Nodes []struct {
		Name     string `xml:"name,attr"`
		ID       string `xml:"id,attr"`
		Online   string `xml:"online,attr"`
		Standby  string `xml:"standby,attr"`
		Unclean  string `xml:"unclean,attr"`
		Shutdown string `xml:"shutdown,attr"`
		IsDC     string `xml:"is_dc,attr"`
	} `xml:"nodes>node"`
	Primitives []xmlResource `xml:"resources>resource"`
	Clones     []struct {
		ID        string        `xml:"id,attr"`
		Resources []xmlResource `xml:"resource"`
	} `xml:"resources>clone"`
	Failures []struct {
		OpKey      string `xml:"op_key,attr"`
		Task       string `xml:"task,attr"`
		Node       string `xml:"node,attr"`
		ExitCode   int    `xml:"exitcode,attr"`
		ExitReason string `xml:"exitreason,attr"`
	} `xml:"failures>failure"`
	Status struct {
		Code    string `xml:"code,attr"`
		Message string `xml:"message,attr"`
	} `xml:"status"`
}

type xmlResource struct {
	ID     string `xml:"id,attr"`
	Agent  string `xml:"resource_agent,attr"`
	Role   string `xml:"role,attr"`
	Active string `xml:"active,attr"`
	Failed string `xml:"failed,attr"`
	Nodes  []struct {
		Name string `xml:"name,attr"`
	} `xml:"node"`
}

func (r xmlResource) resource(clone string) Resource {
	out := Resource{ID: r.ID, Agent: r.Agent, Clone: clone, Role: r.Role, Active: r.Active == "true", Failed: r.Failed == "true"}
	for _, n := range r.Nodes {
		out.Nodes = append(out.Nodes, n.Name)
	}
	return out
}

// ParseCrmMon parses the XML of `crm_mon --output-as=xml`.
func ParseCrmMon(b []byte) (ClusterStatus, error) {
	var x crmMonXML
	if err := xml.Unmarshal(b, &x); err != nil {
		return ClusterStatus{}, fmt.Errorf("parse crm_mon XML: %w", err)
	}
	if x.Status.Code != "" && x.Status.Code != "0" {
		return ClusterStatus{}, fmt.Errorf("crm_mon: status %s: %s", x.Status.Code, x.Status.Message)
	}
	s := ClusterStatus{
		Stack:    x.Summary.Stack.Type,
		Resolved: x.Summary.CurrentDC.Present == "true",
		Quorate:  x.Summary.CurrentDC.WithQuorum == "true",
	}
	if s.Resolved {
		s.DC = x.Summary.CurrentDC.Name
		s.Version = x.Summary.CurrentDC.Version
	}
	for _, r := range x.Primitives {
		s.Resources = append(s.Resources, r.resource(""))
	}
	for _, c := range x.Clones {
		for _, r := range c.Resources {
			s.Resources = append(s.Resources, r.resource(c.ID))
		}
	}
	for _, f := range x.Failures {
		s.Failures = append(s.Failures, Failure{OpKey: f.OpKey, Task: f.Task, Node: f.Node, ExitCode: f.ExitCode, ExitReason: exitReason(f.ExitReason)})
	}
	for _, n := range x.Nodes {
		s.Nodes = append(s.Nodes, Node{
			Name:     n.Name,
			ID:       n.ID,
			Online:   n.Online == "true",
			Standby:  n.Standby == "true",
			Unclean:  n.Unclean == "true",
			Shutdown: n.Shutdown == "true",
			DC:       n.IsDC == "true",
		})
	}
	return s, nil
}

// ClusterOptions reads the cluster options (crm_config nvpairs) from the CIB.
func ClusterOptions(ctx context.Context, run Runner) (map[string]string, error) {
	out, err := run(ctx, "cibadmin", "--query", "--scope", "crm_config")
	if err != nil {
		return nil, fmt.Errorf("cibadmin query crm_config: %w", err)
	}
	return ParseCrmConfig([]byte(out))
}

// ParseCrmConfig parses a <crm_config> section into name → value.
func ParseCrmConfig(b []byte) (map[string]string, error) {
	var x struct {
		Sets []struct {
			NVPairs []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:"value,attr"`
			} `xml:"nvpair"`
		} `xml:"cluster_property_set"`
	}
	if err := xml.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("parse crm_config XML: %w", err)
	}
	opts := map[string]string{}
	for _, s := range x.Sets {
		for _, p := range s.NVPairs {
			opts[p.Name] = p.Value
		}
	}
	return opts, nil
}

// ResourceParams reads the instance attributes (parameters) of each
// primitive in the CIB: id → name → value.
func ResourceParams(ctx context.Context, run Runner) (map[string]map[string]string, error) {
	out, err := run(ctx, "cibadmin", "--query", "--scope", "resources")
	if err != nil {
		return nil, fmt.Errorf("cibadmin query resources: %w", err)
	}
	return ParseResourceParams([]byte(out))
}

// ParseResourceParams parses a <resources> section (primitives alone or in
// clones and groups).
func ParseResourceParams(b []byte) (map[string]map[string]string, error) {
	type primitive struct {
		ID    string `xml:"id,attr"`
		Pairs []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"instance_attributes>nvpair"`
	}
	var x struct {
		Primitives []primitive `xml:"primitive"`
		Clones     []struct {
			Primitives []primitive `xml:"primitive"`
		} `xml:"clone"`
		Groups []struct {
			Primitives []primitive `xml:"primitive"`
		} `xml:"group"`
	}
	if err := xml.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("parse resources XML: %w", err)
	}
	all := x.Primitives
	for _, c := range x.Clones {
		all = append(all, c.Primitives...)
	}
	for _, g := range x.Groups {
		all = append(all, g.Primitives...)
	}
	params := map[string]map[string]string{}
	for _, p := range all {
		m := map[string]string{}
		for _, nv := range p.Pairs {
			m[nv.Name] = nv.Value
		}
		params[p.ID] = m
	}
	return params, nil
}

// exitReason undoes the second XML escape Pacemaker 3.0's crm_mon applies
// to an exit reason (an agent's `walreceiver: ""` reads
// `walreceiver: &quot;&quot;` after encoding/xml's unescape); Pacemaker
// 2.1's, escaped once, has no entity left to undo.
func exitReason(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	return html.UnescapeString(s)
}
