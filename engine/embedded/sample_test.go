package embedded

import (
	"math"
	"reflect"
	"testing"
)

func TestSampler(t *testing.T) {
	// Probabilities 0.5, 0.3, 0.15, 0.05 at temperature 1.
	logits := []float32{float32(math.Log(0.3)), float32(math.Log(0.5)), float32(math.Log(0.05)), float32(math.Log(0.15))}
	count := func(temp, topP float64, seed uint64) [4]int {
		s := newSampler(temp, topP, seed)
		var n [4]int
		for range 4000 {
			n[s.sample(logits)]++
		}
		return n
	}
	if n := count(0, 1, 1); n != [4]int{0, 4000, 0, 0} {
		t.Errorf("greedy picked %v", n)
	}
	if argmax([]float32{1, 3, 3, 2}) != 1 {
		t.Error("argmax does not take the first of equals")
	}
	// top_p 0.5 keeps the likeliest token only; 0.8 keeps two; 0.81 three.
	if n := count(1, 0.5, 1); n != [4]int{0, 4000, 0, 0} {
		t.Errorf("top_p 0.5 picked %v", n)
	}
	if n := count(1, 0.8, 1); n[2] != 0 || n[3] != 0 || n[0] == 0 {
		t.Errorf("top_p 0.8 picked %v", n)
	}
	if n := count(1, 0.81, 1); n[2] != 0 || n[3] == 0 {
		t.Errorf("top_p 0.81 picked %v", n)
	}
	// Without a cut the frequencies follow the probabilities.
	n := count(1, 1, 2)
	for i, p := range []float64{0.3, 0.5, 0.05, 0.15} {
		if got := float64(n[i]) / 4000; math.Abs(got-p) > 0.03 {
			t.Errorf("token %d drawn %.3f of the time, want %.2f", i, got, p)
		}
	}
	// A low temperature sharpens the distribution.
	if n := count(0.1, 1, 3); n[1] < 3900 {
		t.Errorf("temperature 0.1 picked %v", n)
	}
	if a, b := count(0.7, 0.9, 9), count(0.7, 0.9, 9); !reflect.DeepEqual(a, b) {
		t.Errorf("one seed, two results: %v %v", a, b)
	}
}

func TestStopper(t *testing.T) {
	type step struct {
		in, out string
		stop    bool
	}
	for name, tc := range map[string]struct {
		stops []string
		steps []step
		flush string
	}{
		"none":       {nil, []step{{"abc", "abc", false}}, ""},
		"empty stop": {[]string{""}, []step{{"abc", "abc", false}}, ""},
		"across": {[]string{"lo!"}, []step{
			{"Hel", "He", false}, {"lo", "l", false}, {"!x", "", true},
		}, ""},
		"false start": {[]string{"lo!"}, []step{{"Hel", "He", false}, {"p", "lp", false}}, ""},
		"held at end": {[]string{"END"}, []step{{"the EN", "the ", false}}, "EN"},
		"earliest": {[]string{"cd", "bcx"}, []step{
			{"ab", "a", false}, {"cdx", "b", true},
		}, ""},
		"whole": {[]string{"\n\n"}, []step{{"a\n", "a", false}, {"\nb", "", true}}, ""},
	} {
		s := newStopper(tc.stops)
		for i, st := range tc.steps {
			out, stop := s.push(st.in)
			if out != st.out || stop != st.stop {
				t.Errorf("%s step %d: push(%q) = %q, %v; want %q, %v", name, i, st.in, out, stop, st.out, st.stop)
			}
		}
		if f := s.flush(); f != tc.flush {
			t.Errorf("%s: flush = %q, want %q", name, f, tc.flush)
		}
	}
}
