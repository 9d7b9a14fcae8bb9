package pooler

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/rampart-ha/rampart/pooler/watchdog"
)

// RunWitness runs the pair's witness: a member that votes and
// acknowledges but never leads or holds an address, so that two poolers
// can tell a dead peer from a cut link. Its file has [watchdog] and
// [members] only.
func RunWitness(ctx context.Context, path string, log *slog.Logger) error {
	wc, err := watchdog.LoadConfig(path)
	if err != nil {
		return err
	}
	if !wc.Present {
		return fmt.Errorf("%s: no [watchdog] section: a witness needs self, key_file and [members]", path)
	}
	if !wc.Me().Witness {
		return fmt.Errorf("%s: member %q is not marked witness in [members]", path, wc.Self)
	}
	key, err := watchdog.ReadKey(wc.KeyFile)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dog, err := watchdog.New(wc, key, nil, log.With("witness", wc.Self), nil)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	dog.Alive = systemdPinger()
	daemon.SdNotify(false, fmt.Sprintf("READY=1\nSTATUS=witness %s of %d members", wc.Self, len(wc.Members)))
	log.Info("witness running", "self", wc.Self, "members", len(wc.Members), "listen", wc.Me().Addr)
	return dog.Run(ctx)
}

// systemdPinger returns a function that tells systemd the process is
// alive, at most twice per WatchdogSec; nil without WatchdogSec.
func systemdPinger() func() {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every <= 0 {
		return nil
	}
	var last time.Time
	return func() {
		if now := time.Now(); now.Sub(last) >= every/2 {
			last = now
			daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
	}
}
