package vip

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rampart-ha/rampart/ra/ocf"
	"github.com/rampart-ha/rampart/ra/ocf/ocftest"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestMetaDataGolden(t *testing.T) {
	out := ocftest.MetaData(t, New(time.Now))
	ocftest.Golden(t, out, "testdata/meta-data.xml", *update)
	ocftest.ValidDTD(t, out)
}

func run(t *testing.T, action string, params ...string) (ocf.Status, string) {
	t.Helper()
	env := []string{"OCF_RESOURCE_INSTANCE=vip", "OCF_RESKEY_CRM_meta_timeout=20000"}
	for i := 0; i+1 < len(params); i += 2 {
		env = append(env, "OCF_RESKEY_"+params[i]+"="+params[i+1])
	}
	var out, errb bytes.Buffer
	st := ocf.Run(context.Background(), New(time.Now), []string{"vip", action}, env, &out, &errb, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return st, errb.String()
}

// Bad parameters: OCF_ERR_CONFIGURED with the parameter named, before
// anything touches the network (these run without root).
func TestBadParametersAreRefused(t *testing.T) {
	for _, tt := range []struct {
		name   string
		params []string
		want   string
	}{
		{"no address", nil, "ip"},
		{"not an IP", []string{"ip", "192.168.1.300"}, "ip"},
		{"a hostname", []string{"ip", "db.example.com"}, "ip"},
		{"multicast", []string{"ip", "239.1.1.1"}, "ip"},
		{"prefix out of range", []string{"ip", "192.168.1.10", "cidr_netmask", "33"}, "cidr_netmask"},
		{"non-contiguous netmask", []string{"ip", "192.168.1.10", "cidr_netmask", "255.0.255.0"}, "cidr_netmask"},
		{"interface name with a slash", []string{"ip", "192.168.1.10", "nic", "eth0/1"}, "nic"},
		{"count not a number", []string{"ip", "192.168.1.10", "arp_count", "five"}, "arp_count"},
		{"interval out of range", []string{"ip", "192.168.1.10", "arp_interval", "-1"}, "arp_interval"},
		{"probe not a boolean", []string{"ip", "192.168.1.10", "run_arping", "maybe"}, "run_arping"},
	} {
		for _, action := range []string{"validate-all", "start"} {
			st, stderr := run(t, action, tt.params...)
			if st != ocf.ErrConfigured || !strings.Contains(stderr, tt.want) {
				t.Errorf("%s, %s: got %v %q, want OCF_ERR_CONFIGURED naming %s", tt.name, action, st, stderr, tt.want)
			}
		}
	}
}

func TestParseNetmask(t *testing.T) {
	for in, want := range map[string]int{"": 0, "24": 24, "255.255.255.0": 24, "255.255.255.255": 32, "255.128.0.0": 9, "128": 128} {
		if got, err := parseNetmask(in); err != nil || got != want {
			t.Errorf("parseNetmask(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"0", "129", "255.255.0.255", "0.0.0.0", "ffff::", "x"} {
		if _, err := parseNetmask(bad); err == nil {
			t.Errorf("parseNetmask(%q) accepted", bad)
		}
	}
}

func FuzzParameters(f *testing.F) {
	f.Add("192.168.1.10", "24", "eth0", "vip")
	f.Add("fd00::1", "", "", "")
	f.Fuzz(func(t *testing.T, ip, mask, nic, label string) {
		if strings.ContainsAny(ip+mask+nic+label, "\x00=\n") {
			return
		}
		st, _ := run(t, "validate-all", "ip", ip, "cidr_netmask", mask, "nic", nic, "iflabel", label)
		// Without root and a matching interface, nothing validates fully;
		// what matters is a clean OCF status, never a crash.
		switch st {
		case ocf.Success, ocf.ErrConfigured, ocf.ErrGeneric, ocf.ErrInstalled:
		default:
			t.Errorf("validate-all %q %q %q %q: status %v", ip, mask, nic, label, st)
		}
	})
}
