package ops

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestChooseBackupSource(t *testing.T) {
	// n3 is async: it is chosen over the sync n2 although it is behind.
	if got, err := ChooseBackupSource(Assemble(healthy())); err != nil || got != "n3" {
		t.Errorf("got %q, %v; want the async standby n3", got, err)
	}
	o := healthy()
	o.Attrs["rampart-pgsql-state"]["n3"] = "disconnected"
	if got, err := ChooseBackupSource(Assemble(o)); err != nil || got != "n2" {
		t.Errorf("n3 not streaming: got %q, %v; want n2", got, err)
	}
	o.Attrs["rampart-pgsql-state"]["n2"] = "catchup"
	var r *Refusal
	if _, err := ChooseBackupSource(Assemble(o)); !errors.As(err, &r) {
		t.Errorf("no streaming standby: got %v; want a refusal", err)
	}
}

func TestCheckBackupSource(t *testing.T) {
	for _, tt := range []struct {
		hs    string
		allow bool
		want  string // "" = allowed
	}{
		{"on", false, ""},
		{"off", false, "n1 is a primary"},
		{"off", true, ""},
		{"", false, "does not say whether it is a standby"},
		{"", true, ""},
	} {
		err := CheckBackupSource("n1", tt.hs, tt.allow)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("in_hot_standby=%q allow=%v: %v; want %q", tt.hs, tt.allow, err, tt.want)
		}
	}
}

func TestCheckEmptyDir(t *testing.T) {
	dir := t.TempDir()
	if err := checkEmptyDir(dir); err != nil {
		t.Errorf("empty folder: %v", err)
	}
	if err := checkEmptyDir(filepath.Join(dir, "new")); err != nil {
		t.Errorf("new folder: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var r *Refusal
	if err := checkEmptyDir(dir); !errors.As(err, &r) || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("non-empty folder: %v", err)
	}
	if err := checkEmptyDir("backup"); !errors.As(err, &r) {
		t.Errorf("relative path: %v", err)
	}
}

// A backup uses the port, replication role and binaries of the agent:
// the resource's parameters, the agent's defaults where there are none.
func TestBackupDefaults(t *testing.T) {
	withParams := func(params map[string]string) View {
		o := healthy()
		for k, val := range params {
			o.Params["pgsql"][k] = val
		}
		return Assemble(o)
	}
	tests := []struct {
		name string
		req  BackupRequest
		view View
		want BackupRequest
		says string // a refusal
	}{
		{name: "no resource: the agent's defaults", view: View{},
			want: BackupRequest{Port: 5432, User: "repl", BinDir: "/usr/lib/postgresql/15/bin"}},
		{name: "the resource's defaults", view: withParams(nil),
			want: BackupRequest{Port: 5432, User: "repl", BinDir: "/usr/lib/postgresql/15/bin"}},
		{name: "the resource's settings", view: withParams(map[string]string{"pgport": "5433", "repuser": "replicator", "bindir": "/opt/pg/bin"}),
			want: BackupRequest{Port: 5433, User: "replicator", BinDir: "/opt/pg/bin"}},
		{name: "given ones win", req: BackupRequest{Port: 6432, User: "backup", BinDir: "/usr/bin"}, view: withParams(map[string]string{"pgport": "5433"}),
			want: BackupRequest{Port: 6432, User: "backup", BinDir: "/usr/bin"}},
		{name: "an invalid pgport is no default", view: withParams(map[string]string{"pgport": "post"}), says: "pass --port"},
		{name: "an invalid pgport given anyway", req: BackupRequest{Port: 5433}, view: withParams(map[string]string{"pgport": "post"}),
			want: BackupRequest{Port: 5433, User: "repl", BinDir: "/usr/lib/postgresql/15/bin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BackupDefaults(tt.req, tt.view)
			if tt.says != "" {
				var r *Refusal
				if !errors.As(err, &r) || !strings.Contains(err.Error(), tt.says) {
					t.Errorf("got %+v, %v; want a refusal saying %q", got, err, tt.says)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
