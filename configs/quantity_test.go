package configs

import "testing"

// TestParseQuantities checks the forms .mlbot.yml and the operator's
// limits accept: ParseCPU and ParseBytes, and their Format inverses.
func TestParseQuantities(t *testing.T) {
	cpu := []struct {
		in   string
		want int64
		ok   bool
	}{{"2", 2000, true}, {"0.5", 500, true}, {"500m", 500, true}, {"1.5m", 2, true}, {".5", 500, true},
		{"66027.687", 66027687, true}, // exact, not a float's 66027688
		{"1000000", 1e9, true}, {"1000000.001", 0, false}, {"0", 0, false}, {"0m", 0, false},
		{"", 0, false}, {"lots", 0, false}, {"-1", 0, false}, {"+1", 0, false}, {"1e3", 0, false}, {"2Gi", 0, false},
		{"2k", 0, false}, {" 2", 0, false}, {"NaN", 0, false}, {"Inf", 0, false}, {"0x1p4", 0, false}, {".9_99", 0, false}}
	for _, c := range cpu {
		got, err := ParseCPU(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseCPU(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
	mem := []struct {
		in   string
		want int64
		ok   bool
	}{{"512Mi", 512 << 20, true}, {"4Gi", 4 << 30, true}, {"1G", 1e9, true}, {"1048576", 1 << 20, true},
		{"1.5Gi", 3 << 29, true}, {"0.5", 1, true}, {"4096Pi", 1 << 62, true}, {"4096.001Pi", 0, false},
		{"33229.356246M", 33229356246, true}, // exact, not a float's 33229356247
		{"4Xi", 0, false}, {"Gi", 0, false}, {"0", 0, false}, {"-1Gi", 0, false}, {"1Ei", 0, false}, {"1E", 0, false},
		{"1m", 0, false}, {"1e3", 0, false}, {"NaN", 0, false}, {"0x1p4k", 0, false}}
	for _, c := range mem {
		got, err := ParseBytes(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
	if FormatBytes(8<<30) != "8Gi" || FormatBytes(1536<<20) != "1536Mi" || FormatCPU(500) != "500m" || FormatCPU(4000) != "4" {
		t.Errorf("Format: %s %s %s %s", FormatBytes(8<<30), FormatBytes(1536<<20), FormatCPU(500), FormatCPU(4000))
	}
}

// TestParseQuantity checks the whole notation a runner is handed:
// exponents, every suffix, zero and surrounding spaces.
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
		{q: "0", scale: 1, want: 0},
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
		{q: "NaN", bad: true},
	}
	for _, tt := range tests {
		got, err := ParseQuantity(tt.q, max(tt.scale, 1))
		if tt.bad {
			if err == nil {
				t.Errorf("ParseQuantity(%q) = %d, want an error", tt.q, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseQuantity(%q, %d) = %d, %v; want %d", tt.q, tt.scale, got, err, tt.want)
		}
	}
}
