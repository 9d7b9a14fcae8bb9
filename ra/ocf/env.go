package ocf

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Env is what Pacemaker tells an agent through the environment, parsed once.
type Env struct {
	Resource   string            // OCF_RESOURCE_INSTANCE without a ":N" clone suffix
	Instance   string            // OCF_RESOURCE_INSTANCE as given
	Params     map[string]string // OCF_RESKEY_<name>, meta attributes excluded
	Meta       map[string]string // OCF_RESKEY_CRM_meta_<name>
	Timeout    time.Duration     // CRM_meta_timeout; 0 when not given
	Interval   time.Duration     // CRM_meta_interval; 0 for probes and one-off actions
	Role       Role              // CRM_meta_role of a recurring monitor; "" otherwise
	OnNode     string            // CRM_meta_on_node: this node's name in the cluster
	CheckLevel int               // OCF_CHECK_LEVEL
	Clone      Clone
	Notify     Notify // set during notify actions
}

// Role is a promotable clone instance's role, in OCF 1.1 names.
type Role string

// Roles. Pacemaker 2.1 may still pass Master and Slave; they are mapped.
const (
	Promoted   Role = "Promoted"
	Unpromoted Role = "Unpromoted"
)

// Clone holds the clone meta attributes.
type Clone struct {
	Max, NodeMax, PromotedMax, PromotedNodeMax int
	Notify                                     bool
}

// Notify is a clone notification: what Pacemaker is about to do (pre) or
// did (post), and to which instances.
type Notify struct {
	Type                                                                 string // "pre" or "post"
	Operation                                                            string // start, stop, promote, demote
	Start, Stop, Promote, Demote, Active, Promoted, Unpromoted, Inactive []Instance
	Available, All                                                       []string // node names
}

// Instance is one clone instance and the node it is on ("" when unknown).
type Instance struct {
	Resource string
	Node     string
}

// Nodes returns the node names of instances, skipping unknown ones.
func Nodes(instances []Instance) []string {
	var names []string
	for _, i := range instances {
		if i.Node != "" {
			names = append(names, i.Node)
		}
	}
	return names
}

const (
	reskey   = "OCF_RESKEY_"
	metaKey  = "OCF_RESKEY_CRM_meta_"
	notifKey = "notify_"
)

// ParseEnv parses an environment in os.Environ form. It does not look at
// the process environment itself.
func ParseEnv(environ []string) (Env, error) {
	e := Env{Params: map[string]string{}, Meta: map[string]string{}}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch {
		case k == "OCF_RESOURCE_INSTANCE":
			e.Instance = v
		case k == "OCF_CHECK_LEVEL":
			n, err := strconv.Atoi(v)
			if err != nil {
				return e, Errorf(ErrArgs, "OCF_CHECK_LEVEL=%q: not a number", v)
			}
			e.CheckLevel = n
		case strings.HasPrefix(k, metaKey):
			e.Meta[strings.TrimPrefix(k, metaKey)] = v
		case strings.HasPrefix(k, reskey):
			e.Params[strings.TrimPrefix(k, reskey)] = v
		}
	}
	e.Resource, _, _ = strings.Cut(e.Instance, ":")
	var err error
	if e.Timeout, err = e.metaMillis("timeout"); err != nil {
		return e, err
	}
	if e.Interval, err = e.metaMillis("interval"); err != nil {
		return e, err
	}
	switch r := e.Meta["role"]; r {
	case "":
	case "Promoted", "Master":
		e.Role = Promoted
	case "Unpromoted", "Slave":
		e.Role = Unpromoted
	default:
		return e, Errorf(ErrArgs, "CRM_meta_role=%q: unknown role", r)
	}
	e.OnNode = e.Meta["on_node"]
	if e.Clone, err = e.parseClone(); err != nil {
		return e, err
	}
	e.Notify = e.parseNotify()
	return e, nil
}

func (e Env) metaMillis(name string) (time.Duration, error) {
	v := strings.TrimSpace(e.Meta[name])
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, Errorf(ErrArgs, "CRM_meta_%s=%q: not a number of milliseconds", name, v)
	}
	return time.Duration(n) * time.Millisecond, nil
}

// metaInt reads the first of names that is set, so that both the OCF 1.1
// names (promoted_max) and the deprecated ones (master_max) work.
func (e Env) metaInt(names ...string) (int, error) {
	for _, name := range names {
		v := strings.TrimSpace(e.Meta[name])
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, Errorf(ErrArgs, "CRM_meta_%s=%q: not a number", name, v)
		}
		return n, nil
	}
	return 0, nil
}

func (e Env) parseClone() (Clone, error) {
	var c Clone
	var err error
	for _, f := range []struct {
		dst   *int
		names []string
	}{
		{&c.Max, []string{"clone_max"}},
		{&c.NodeMax, []string{"clone_node_max"}},
		{&c.PromotedMax, []string{"promoted_max", "master_max"}},
		{&c.PromotedNodeMax, []string{"promoted_node_max", "master_node_max"}},
	} {
		if *f.dst, err = e.metaInt(f.names...); err != nil {
			return c, err
		}
	}
	c.Notify, _ = ParseBool(e.Meta["notify"])
	return c, nil
}

// list splits a notify list; Pacemaker sends " " for an empty one.
func list(s string) []string { return strings.Fields(s) }

// instances pairs <x>_resource with <x>_uname, trying each prefix in turn
// (promoted_ before the deprecated master_).
func (e Env) instances(prefixes ...string) []Instance {
	for _, p := range prefixes {
		res, okRes := e.Meta[notifKey+p+"_resource"]
		names, okNames := e.Meta[notifKey+p+"_uname"]
		if !okRes && !okNames {
			continue
		}
		r, n := list(res), list(names)
		out := make([]Instance, 0, max(len(r), len(n)))
		for i := 0; i < max(len(r), len(n)); i++ {
			var in Instance
			if i < len(r) {
				in.Resource = r[i]
			}
			if i < len(n) {
				in.Node = n[i]
			}
			out = append(out, in)
		}
		return out
	}
	return nil
}

func (e Env) parseNotify() Notify {
	return Notify{
		Type:       e.Meta[notifKey+"type"],
		Operation:  e.Meta[notifKey+"operation"],
		Start:      e.instances("start"),
		Stop:       e.instances("stop"),
		Promote:    e.instances("promote"),
		Demote:     e.instances("demote"),
		Active:     e.instances("active"),
		Promoted:   e.instances("promoted", "master"),
		Unpromoted: e.instances("unpromoted", "slave"),
		Inactive:   e.instances("inactive"),
		Available:  list(e.Meta[notifKey+"available_uname"]),
		All:        list(e.Meta[notifKey+"all_uname"]),
	}
}

// Probe reports whether a monitor is a probe (a one-off check with interval 0).
func (e Env) Probe() bool { return e.Interval == 0 }

func (n Notify) String() string {
	return fmt.Sprintf("%s-%s start=%v stop=%v promote=%v demote=%v promoted=%v unpromoted=%v",
		n.Type, n.Operation, Nodes(n.Start), Nodes(n.Stop), Nodes(n.Promote), Nodes(n.Demote), Nodes(n.Promoted), Nodes(n.Unpromoted))
}
