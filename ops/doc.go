// Package ops holds what operators load next to mlbot: Grafana dashboards
// and provisioning (grafana/), Prometheus alert rules and their promtool
// tests (prometheus/). It has no Go code of its own; its tests check those
// files against the metrics mlbot really exports.
package ops
