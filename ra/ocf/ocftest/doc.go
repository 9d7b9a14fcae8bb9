// Package ocftest checks what every OCF agent must get right, for the
// agents' tests: meta-data equal to a golden file and valid against
// resource-agents' ra-api-1.dtd (what crm and pcs rely on).
package ocftest
