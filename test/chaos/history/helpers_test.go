package history

import "time"

// Hand-written histories count in milliseconds.
const ms = time.Millisecond

// Servers as the clients would see them: one cluster (system id 7001),
// pg1 the first primary on timeline 1, pg2 promoted on timeline 2, pg3 a
// standby, and pgX an impostor from another cluster.
var (
	pg1tl1 = Server{Node: "pg1", SystemID: 7001, Timeline: 1}
	pg2tl2 = Server{Node: "pg2", SystemID: 7001, Timeline: 2}
	pg3sb  = Server{Node: "pg3", SystemID: 7001, Timeline: 2, Standby: true}
	pgXtl1 = Server{Node: "pgX", SystemID: 9009, Timeline: 1}
)

// op builds an operation through the database VIP on pg1; from and to are
// in milliseconds. The tests change what differs from that.
func op(id, client int, kind Kind, key int, value int64, from, to int, outcome Outcome) Op {
	o := Op{ID: id, Client: client, Kind: kind, Key: key, Value: value,
		Invoked: time.Duration(from) * ms, Completed: time.Duration(to) * ms,
		Outcome: outcome, Path: ViaVIP}
	if outcome == OK {
		o.Server = pg1tl1
	}
	return o
}

// read builds an ok list read through the VIP on pg1.
func read(id, client, key int, list []int64, from, to int) Op {
	o := op(id, client, ReadList, key, 0, from, to, OK)
	o.List = list
	return o
}

// on sets where an operation ran and the path it took.
func on(o Op, path Path, s Server) Op {
	o.Path, o.Server = path, s
	return o
}

// ids lists the operation ids each violation names, in order.
func ids(vs []Violation) [][]int {
	var out [][]int
	for _, v := range vs {
		var ids []int
		for _, o := range v.Ops {
			ids = append(ids, o.ID)
		}
		out = append(out, ids)
	}
	return out
}

// kinds lists the kinds of violations, in order.
func kinds(vs []Violation) []ViolationKind {
	var out []ViolationKind
	for _, v := range vs {
		out = append(out, v.Kind)
	}
	return out
}
