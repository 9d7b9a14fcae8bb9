package ipmi

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/command/chassis"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/rampart-ha/rampart/fence"
)

// Name is the agent's name: the binary runs it when called by this name
// (/usr/sbin/fence_rampart_ipmi).
const Name = "fence_rampart_ipmi"

// Params are the agent's own options.
var Params = []fence.Param{
	{Name: "ip", Deprecated: []string{"ipaddr"}, Short: 'a', Value: "ip", Type: fence.String, Required: true, Desc: "IP address or hostname of the BMC"},
	{Name: "ipport", Short: 'u', Value: "port", Type: fence.Integer, Default: "623", Desc: "UDP port of the BMC"},
	{Name: "username", Deprecated: []string{"login"}, Short: 'l', Value: "name", Type: fence.String, Desc: "Login name"},
	{Name: "password", Deprecated: []string{"passwd"}, Short: 'p', Value: "password", Type: fence.String, Secret: true, Desc: "Login password (prefer password_file: a command line is visible to every user)"},
	{Name: "password_file", Value: "path", Type: fence.String, Desc: "File holding the login password (its first line)"},
	{Name: "lanplus", Short: 'P', Type: fence.Boolean, Default: "1", Desc: "Use IPMI v2.0 RMCP+ (lanplus); 0 for IPMI 1.5"},
	{Name: "cipher", Short: 'C', Value: "cipher", Type: fence.String, Desc: "Cipher suite id for lanplus (e.g. 3 or 17; default: the best the BMC offers)"},
	{Name: "privlvl", Short: 'L', Value: "level", Type: fence.Select, Choices: []string{"callback", "user", "operator", "administrator"}, Default: "administrator", Desc: "Privilege level on the BMC (chassis control needs operator)"},
	{Name: "node", Value: "name", Type: fence.String, Desc: "The cluster node this BMC powers: list names it, and any other plug is refused (exit 1)"},
	{Name: "ipmitool_timeout", Value: "seconds", Type: fence.Second, Default: "2", Desc: "Timeout of one IPMI exchange"},
	{Name: "power_wait", Value: "seconds", Type: fence.Second, Default: "2", Desc: "Wait X seconds after issuing ON/OFF"},
}

// New returns the agent.
func New() *fence.Agent {
	return &fence.Agent{
		Name:  Name,
		Short: "Fence agent for IPMI (native, no ipmitool)",
		Long: "fence_rampart_ipmi powers nodes off and on through their BMC with IPMI v2.0 over LAN (RMCP+), " +
			"without ipmitool and without a password on any command line. off and reboot are confirmed by reading the " +
			"chassis power state back; reboot is off then on. Set node to the cluster node behind the BMC: then status " +
			"and off for any other node fail (exit 1) instead of reporting a wrong \"off\", and list names it for " +
			"Pacemaker's dynamic-list check.",
		VendorURL: "https://www.intel.com/content/www/us/en/products/docs/servers/ipmi/ipmi-second-gen-interface-spec-v2-rev1-1.html",
		Params:    Params,
		Open:      open,
		Validate:  validate,
		Nodes: func(o fence.Options) []string {
			if o["node"] == "" {
				return nil
			}
			return []string{o["node"]}
		},
	}
}

func validate(o fence.Options) error {
	if p := o.Int("ipport"); p < 1 || p > 65535 {
		return fmt.Errorf("ipport=%s: not a UDP port", o["ipport"])
	}
	if o["cipher"] != "" {
		if n, err := strconv.Atoi(o["cipher"]); err != nil || n < 0 || n > 255 {
			return fmt.Errorf("cipher=%q: not a cipher suite id", o["cipher"])
		}
	}
	if o["password"] != "" && o["password_file"] != "" {
		return fmt.Errorf("password and password_file both given: use one")
	}
	return nil
}

func password(o fence.Options) (string, error) {
	if o["password_file"] == "" {
		return o["password"], nil
	}
	b, err := os.ReadFile(o["password_file"])
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimRight(line, "\r"), nil
}

var privileges = map[string]types.PrivilegeLevel{
	"callback": types.PrivilegeLevelCallback, "user": types.PrivilegeLevelUser,
	"operator": types.PrivilegeLevelOperator, "administrator": types.PrivilegeLevelAdministrator,
}

// bmc is one session with a BMC.
type bmc struct {
	c *client.Client
}

func open(ctx context.Context, o fence.Options) (fence.Device, error) {
	pass, err := password(o)
	if err != nil {
		return nil, err
	}
	connect := func(ciphers ...types.CipherSuiteID) (*client.Client, error) {
		c, err := client.NewClient(o["ip"], o.Int("ipport"), o["username"], pass)
		if err != nil {
			return nil, err
		}
		c = c.WithTimeout(max(o.Duration("ipmitool_timeout"), 100*time.Millisecond)).WithMaxPrivilegeLevel(privileges[o["privlvl"]])
		if !o.Bool("lanplus") {
			c = c.WithInterface(client.InterfaceLan)
		} else if c = c.WithInterface(client.InterfaceLanplus); len(ciphers) > 0 {
			c = c.WithCipherSuiteID(ciphers...)
		}
		if err := c.Connect(ctx); err != nil {
			return nil, fmt.Errorf("%s:%s: %w", o["ip"], o["ipport"], err)
		}
		return c, nil
	}
	if o["cipher"] != "" {
		c, err := connect(types.CipherSuiteID(o.Int("cipher")))
		if err != nil {
			return nil, err
		}
		return &bmc{c: c}, nil
	}
	// Suites 17 and 3 first: asking the BMC which it offers costs seconds
	// on BMCs that do not answer that (ipmi_sim); then the BMC's best.
	c, err := connect(types.CipherSuiteID17, types.CipherSuiteID3)
	if err != nil && o.Bool("lanplus") && !unanswered(err) {
		c, err = connect()
	}
	if err != nil {
		return nil, err
	}
	return &bmc{c: c}, nil
}

func (b *bmc) Status(ctx context.Context) (fence.Power, error) {
	r, err := b.c.GetChassisStatus(ctx)
	if err != nil {
		return fence.Off, fmt.Errorf("get chassis status: %w", err)
	}
	if r.PowerIsOn {
		return fence.On, nil
	}
	return fence.Off, nil
}

func (b *bmc) SetPower(ctx context.Context, on bool) error {
	ctl := chassis.ChassisControlPowerDown
	if on {
		ctl = chassis.ChassisControlPowerUp
	}
	if _, err := b.c.ChassisControl(ctx, ctl); err != nil {
		return fmt.Errorf("chassis control: %w", err)
	}
	return nil
}

func (b *bmc) Close() error {
	return b.c.Close(context.Background())
}

// unanswered: the BMC did not even answer the first command of a session
// (Get Channel Authentication Capabilities); asking again with other
// cipher suites would only double the time a fence attempt takes to fail.
func unanswered(err error) bool {
	return strings.Contains(err.Error(), "Get Channel Authentication Capabilities")
}
