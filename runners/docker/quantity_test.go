package docker

import "testing"

func TestParseQuantity(t *testing.T) {
	tests := []struct {
		q     string
		scale int64
		want  int64
		bad   bool
	}{
		{q: "4Gi", scale: 1, want: 4 << 30},
		{q: "64Mi", scale: 1, want: 64 << 20},
		{q: "1.5Gi", scale: 1, want: 3 << 29},
		{q: "128M", scale: 1, want: 128e6},
		{q: "1k", scale: 1, want: 1000},
		{q: "1Ki", scale: 1, want: 1024},
		{q: "1E", scale: 1, want: 1e18},
		{q: "1e3", scale: 1, want: 1000},
		{q: "2E2", scale: 1, want: 200},
		{q: "12345", scale: 1, want: 12345},
		{q: "0.5", scale: 1, want: 1}, // rounded up
		{q: "2", scale: 1e9, want: 2e9},
		{q: "500m", scale: 1e9, want: 5e8},
		{q: "0.25", scale: 1e9, want: 25e7},
		{q: "100u", scale: 1e9, want: 1e5},
		{q: "1n", scale: 1e9, want: 1},
		{q: " 1Gi ", scale: 1, want: 1 << 30},
		{q: "", bad: true},
		{q: "Gi", bad: true},
		{q: "-1", bad: true},
		{q: "1GB", bad: true},
		{q: "1.2.3", bad: true},
		{q: "2e", bad: true},
		{q: "1e1000", bad: true},
		{q: "9Ei", scale: 1, bad: true}, // too large for int64
		{q: "four", bad: true},
	}
	for _, tt := range tests {
		got, err := parseQuantity(tt.q, max(tt.scale, 1))
		if tt.bad {
			if err == nil {
				t.Errorf("parseQuantity(%q) = %d, want an error", tt.q, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseQuantity(%q, %d) = %d, %v; want %d", tt.q, tt.scale, got, err, tt.want)
		}
	}
}
