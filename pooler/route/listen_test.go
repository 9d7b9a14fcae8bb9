package route

import "testing"

func TestParseSubscription(t *testing.T) {
	for _, tt := range []struct {
		sql  string
		want Subscription
		ok   bool
	}{
		{"LISTEN orders", Subscription{Listen: true, Channel: "orders"}, true},
		{"listen Orders;", Subscription{Listen: true, Channel: "orders"}, true},
		{`LISTEN "Orders"`, Subscription{Listen: true, Channel: "Orders"}, true},
		{"UNLISTEN orders", Subscription{Channel: "orders"}, true},
		{"UNLISTEN *", Subscription{}, true},
		{"LISTEN a; LISTEN b", Subscription{}, false},
		{"LISTEN a; SELECT 1", Subscription{}, false},
		{"NOTIFY a", Subscription{}, false},
		{"SELECT 'LISTEN a'", Subscription{}, false},
		{"LISTEN", Subscription{}, false},
		{"LISTEN a\x00", Subscription{}, false},
	} {
		got, ok := ParseSubscription(tt.sql)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseSubscription(%q) = %+v, %v; want %+v, %v", tt.sql, got, ok, tt.want, tt.ok)
		}
	}
}
