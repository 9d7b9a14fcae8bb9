package route

import "testing"

func TestParseCausalToken(t *testing.T) {
	for _, tt := range []struct {
		sql  string
		want CausalToken
		ok   bool
	}{
		{"SHOW rampart.last_write_lsn", CausalToken{Show: true}, true},
		{"show RAMPART.LAST_WRITE_LSN;", CausalToken{Show: true}, true},
		{"SET rampart.read_after = '0/16B3748'", CausalToken{Set: "0/16B3748"}, true},
		{"SET rampart.read_after TO '1/0'", CausalToken{Set: "1/0"}, true},
		{"SET LOCAL rampart.read_after = '1/0'", CausalToken{}, false},
		{"SET rampart.read_after = 5", CausalToken{}, false},
		{"SHOW rampart.other", CausalToken{}, false},
		{"SHOW work_mem", CausalToken{}, false},
		{"SHOW rampart.last_write_lsn; SELECT 1", CausalToken{}, false},
		{"SELECT 'rampart.last_write_lsn'", CausalToken{}, false},
	} {
		got, ok := ParseCausalToken(tt.sql)
		if ok != tt.ok || ok && got != tt.want {
			t.Errorf("ParseCausalToken(%q) = %+v, %v; want %+v, %v", tt.sql, got, ok, tt.want, tt.ok)
		}
	}
}
