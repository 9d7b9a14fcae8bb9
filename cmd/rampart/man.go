package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/rampart-ha/rampart/fence/ipmi"
	"github.com/rampart-ha/rampart/ra/pgsql"
	"github.com/rampart-ha/rampart/ra/vip"
)

// manPages are the pages the packages install, by file name.
func manPages(app *cli.App) (map[string]string, error) {
	source := "rampart " + version
	cmd, err := app.ToManWithSection(1)
	if err != nil {
		return nil, err
	}
	pages := map[string]string{
		"rampart.1":           cmd,
		ipmi.Name + ".8":      ipmi.New().ManPage(source),
		"ocf_rampart_pgsql.7": pgsql.New(nil, time.Now).ManPage("rampart", source),
		"ocf_rampart_vip.7":   vip.New(time.Now).ManPage("rampart", source),
	}
	return pages, nil
}

// manCommand writes the manual pages (make packages installs them).
func manCommand() *cli.Command {
	return &cli.Command{
		Name:   "man",
		Usage:  "write the manual pages of rampart and its agents into a folder",
		Hidden: true,
		Flags:  []cli.Flag{&cli.StringFlag{Name: "dir", Required: true, Usage: "`FOLDER` to write NAME.SECTION files into"}},
		Action: func(c *cli.Context) error {
			pages, err := manPages(c.App)
			if err != nil {
				return fmt.Errorf("man: %w", err)
			}
			for name, text := range pages {
				if err := os.WriteFile(filepath.Join(c.String("dir"), name), []byte(text), 0o644); err != nil {
					return fmt.Errorf("man: %w", err)
				}
			}
			return nil
		},
	}
}
