# rampart — see README.md. Every target runs on Debian 12 as root; `make deps`
# installs what the tests and the demo need.

GO        ?= go
BIN       := bin/rampart
VERSION   := $(shell scripts/pkg-version)
PKGDIR    ?= dist
LDFLAGS   := -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Debian packages the tests and the demo use. Keep in step with test/lab's
# Prerequisites and the README.
DEB_PACKAGES := openipmi ipmitool fence-agents \
	corosync pacemaker pacemaker-cli-utils crmsh pcs resource-agents \
	postgresql-15 postgresql-client-15 \
	iproute2 nftables util-linux procps hostname tini libxml2-utils \
	gcc libc6-dev python3-psycopg2 python3-psycopg pgbouncer pgpool2 \
	default-jdk-headless libpostgresql-jdbc-java \
	lintian rpm rpmlint gnupg cpio man-db systemd debootstrap systemd-container

.PHONY: all build test test-short test-hosts lint deps demo chaos bench pgx-suite packages clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/rampart

## packages: the .deb and .rpm (nfpm) into $(PKGDIR); see packaging/
packages:
	scripts/packages $(PKGDIR)

## test: everything CI runs — lint, the unit tests under the race detector, then unit,
## integration, lab and e2e tests (root), one package at a time: lab and e2e tests each
## run whole clusters on two cores; then no lab may be left behind
test: deps lint build test-short
	$(GO) test -count=1 -p 1 -timeout 40m ./...
	$(BIN) lab leftovers

## test-short: unit tests only, under the race detector; no root, no servers
## (the pooler's relay runs against scripted servers here)
test-short:
	$(GO) test -short -race -count=1 ./...

## test-hosts: docs/deploy.md executed on hosts booted by systemd, then failovers on
## what it built, and the rolling upgrade from the previous release tag, on both Debian
## releases (make test runs Debian 13's deployment only; root; about 10 minutes each)
test-hosts: deps
	RAMPART_DEPLOY_RELEASE=debian13 RAMPART_DEPLOY_UPGRADE=1 $(GO) test -count=1 -timeout 90m -v ./test/deploy
	RAMPART_DEPLOY_RELEASE=debian12 RAMPART_DEPLOY_UPGRADE=1 $(GO) test -count=1 -timeout 90m -v ./test/deploy

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

deps:
	@scripts/deps $(DEB_PACKAGES)

## demo: build a lab, show it, run a write load through it, tear it down;
## then the seed's first experiment (the primary's host hangs) with its report
demo: deps build
	$(BIN) lab demo --id demo
	$(BIN) lab seed --id demo --only 1 --out demo-report

## chaos: issue 19's campaign: 100 seeded faults on the seed's lab under a recorded
## list-append and register workload, the history checked; report.md, report.json,
## history.json and timeline.svg
## in chaos-report (root; about 35 minutes on two cores)
chaos: deps build
	$(BIN) lab chaos --id chaos --faults 100 --out chaos-report

## bench: benchmarks, run side by side with their baselines in one run
## (failover: ocf:rampart:pgsql against the ClusterLabs pgsql agent; vip:
## ocf:rampart:vip against IPaddr2; pooler: rampart against direct, PgBouncer and pgpool-II;
## pair: the pooler pair's takeover against pgpool-II's watchdog; membership: Corosync's
## spurious membership changes over RAMPART_SOAK (30 min) idle and loaded; about 2 hours)
bench: deps build
	$(GO) test -run '^$$' -bench . -count 5 ./...
	RAMPART_BENCH=1 $(GO) test -count=1 -timeout 4h -run 'Bench$$' -v ./test/bench

## pgx-suite: pgx's own tests (the version in go.mod) against PostgreSQL 15 directly, through
## PgBouncer and through rampart pooler, in session and transaction mode (root; about 40
## minutes): passed/failed per target, and the tests that fail only through rampart. Results in a
## new folder of $(PGX_SUITE_OUT); RAMPART_PGX_SUITE_TARGETS, _RUN, _TIMEOUT and _BASELINE
## narrow or compare a run (test/pgxsuite/suite_test.go)
PGX_SUITE_OUT ?= pgx-suite.out
pgx-suite: deps
	RAMPART_PGX_SUITE=1 RAMPART_PGX_SUITE_OUT=$(abspath $(PGX_SUITE_OUT)) \
		$(GO) test -count=1 -timeout 8h -run '^TestPgxSuite$$' -v ./test/pgxsuite

clean:
	rm -rf bin bench.out $(PKGDIR) demo-report seed-report pgx-suite.out
