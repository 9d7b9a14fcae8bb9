package pacemaker

import (
	"context"
	"fmt"
	"regexp"
	"strings"
)

// Node attributes. Transient attributes (lifetime reboot) go through attrd
// with attrd_updater; private ones are never written to the CIB and trigger
// no transition. Promotion scores go through crm_attribute with the
// attribute named in full: Pacemaker 2.1.5's crm_attribute misparses a
// value such as -INFINITY after the optional-argument option -p, so values
// are always passed as --update=VALUE.

// PromotionAttr is the node attribute that holds resource rsc's promotion
// score (what crm_attribute --promotion names).
func PromotionAttr(rsc string) string { return "master-" + rsc }

// SetPromotionScore sets rsc's promotion score on node (lifetime reboot).
func SetPromotionScore(ctx context.Context, run Runner, rsc, node, score string) error {
	_, err := run(ctx, "crm_attribute", "--lifetime=reboot", "--node="+node, "--name="+PromotionAttr(rsc), "--update="+score)
	if err != nil {
		return fmt.Errorf("set promotion score of %s on %s to %s: %w", rsc, node, score, err)
	}
	return nil
}

// DeletePromotionScore removes rsc's promotion score on node.
func DeletePromotionScore(ctx context.Context, run Runner, rsc, node string) error {
	_, err := run(ctx, "crm_attribute", "--lifetime=reboot", "--node="+node, "--name="+PromotionAttr(rsc), "--delete")
	if err != nil {
		return fmt.Errorf("delete promotion score of %s on %s: %w", rsc, node, err)
	}
	return nil
}

// SetTransient sets a transient node attribute; private ones stay in attrd.
func SetTransient(ctx context.Context, run Runner, node, name, value string, private bool) error {
	argv := []string{"attrd_updater", "--node=" + node, "--name=" + name, "--update=" + value}
	if private {
		argv = append(argv, "--private")
	}
	if _, err := run(ctx, argv...); err != nil {
		return fmt.Errorf("set attribute %s on %s: %w", name, node, err)
	}
	return nil
}

// QueryTransient returns a transient attribute's value on every node that
// has it (private ones included).
func QueryTransient(ctx context.Context, run Runner, name string) (map[string]string, error) {
	out, err := run(ctx, "attrd_updater", "--query", "--all", "--name="+name)
	if err != nil {
		// attrd_updater fails when no node has the attribute.
		if strings.Contains(err.Error(), "does not exist") || strings.Contains(err.Error(), "No such") {
			return map[string]string{}, nil
		}
		return nil, fmt.Errorf("query attribute %s: %w", name, err)
	}
	return ParseAttrdQuery(out), nil
}

// attrd prints values unescaped, so a value runs to the line's last quote.
var attrdLine = regexp.MustCompile(`^name="([^"]*)" host="([^"]*)" value="(.*)"$`)

// ParseAttrdQuery parses `attrd_updater --query` lines into node → value.
// attrd reports a deleted attribute with an empty value: it is left out.
func ParseAttrdQuery(out string) map[string]string {
	values := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if m := attrdLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil && m[3] != "" {
			values[m[2]] = m[3]
		}
	}
	return values
}

// LocalNode returns this node's name in the cluster (crm_node -n).
func LocalNode(ctx context.Context, run Runner) (string, error) {
	out, err := run(ctx, "crm_node", "--name")
	if err != nil {
		return "", fmt.Errorf("crm_node --name: %w", err)
	}
	name := strings.TrimSpace(out)
	if name == "" {
		return "", fmt.Errorf("crm_node --name printed nothing")
	}
	return name, nil
}

// Quorate says whether this node's partition has quorum (crm_node
// --quorum: "1" or "0").
func Quorate(ctx context.Context, run Runner) (bool, error) {
	out, err := run(ctx, "crm_node", "--quorum")
	if err != nil {
		return false, fmt.Errorf("crm_node --quorum: %w", err)
	}
	switch strings.TrimSpace(out) {
	case "1":
		return true, nil
	case "0":
		return false, nil
	}
	return false, fmt.Errorf("crm_node --quorum printed %q, want 1 or 0", strings.TrimSpace(out))
}

// SetProperty sets a cluster-wide value that lives in the CIB (permanent,
// replicated, kept across restarts of every node) as an nvpair of the
// crm_config property set named set: agents' own state, kept out of
// cib-bootstrap-options, as other agents (SAPHanaSR) do. ClusterOptions
// reads it back.
func SetProperty(ctx context.Context, run Runner, set, name, value string) error {
	_, err := run(ctx, "crm_attribute", "--type=crm_config", "--set-name="+set, "--name="+name, "--update="+value)
	if err != nil {
		return fmt.Errorf("set cluster property %s to %s: %w", name, value, err)
	}
	return nil
}

// DeleteProperty removes a value SetProperty set (none there is no error).
func DeleteProperty(ctx context.Context, run Runner, set, name string) error {
	if _, err := run(ctx, "crm_attribute", "--type=crm_config", "--set-name="+set, "--name="+name, "--delete"); err != nil {
		return fmt.Errorf("delete cluster property %s: %w", name, err)
	}
	return nil
}
