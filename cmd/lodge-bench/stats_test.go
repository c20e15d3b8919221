package main

import "testing"

func TestSummarize(t *testing.T) {
	tests := []struct {
		values      []float64
		median, p90 float64
	}{
		{[]float64{3}, 3, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 4},
		{[]float64{5, 1, 4, 2, 3}, 3, 5},
		{[]float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 5.5, 9},
	}
	for _, tt := range tests {
		s := summarize(tt.values)
		if s.N != len(tt.values) || s.Median != tt.median || s.P90 != tt.p90 {
			t.Errorf("summarize(%v) = %+v, want median %v p90 %v", tt.values, s, tt.median, tt.p90)
		}
	}
	if s := summarize(nil); s.N != 0 {
		t.Errorf("summarize(nil) = %+v", s)
	}
}

func TestMean(t *testing.T) {
	if m := mean([]float64{1, 2, 6}); m != 3 {
		t.Errorf("mean = %v, want 3", m)
	}
}
