package proxy

import (
	"context"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-ha/rampart/pooler/route"
)

// catalog is what the primary's pg_proc says of functions' volatility,
// for the router. Until it is loaded every function is unknown, and
// statements calling one go to the primary.
type catalog struct {
	mu    sync.RWMutex
	funcs map[string]route.Volatility
}

func (c *catalog) Volatility(name string) route.Volatility {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.funcs[name]
}

func (c *catalog) loaded() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.funcs != nil
}

// load reads pg_proc through conn. A bare name takes the most volatile of
// the functions of that name in any schema (the search path decides which
// one a statement calls, and the router cannot know it).
func (c *catalog) load(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, `SELECT n.nspname, p.proname, p.provolatile::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace`)
	if err != nil {
		return err
	}
	funcs := map[string]route.Volatility{}
	rank := map[route.Volatility]int{route.Immutable: 1, route.Stable: 2, route.Volatile: 3}
	for rows.Next() {
		var schema, name, vol string
		if err := rows.Scan(&schema, &name, &vol); err != nil {
			return err
		}
		v := route.Volatility(vol[0])
		for _, key := range []string{strings.ToLower(schema + "." + name), strings.ToLower(name)} {
			if old, ok := funcs[key]; !ok || rank[v] > rank[old] {
				funcs[key] = v
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.funcs = funcs
	c.mu.Unlock()
	return nil
}
