package revert

import (
	"reflect"
	"testing"
)

func TestFailRunsStepsInReverse(t *testing.T) {
	var got []int
	r := New()
	r.Add(func() { got = append(got, 1) })
	r.Add(func() { got = append(got, 2) })
	r.Fail()
	r.Fail() // a second call must not run the steps again
	if want := []int{2, 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("undo order = %v, want %v", got, want)
	}
}

func TestSuccessSkipsSteps(t *testing.T) {
	ran := false
	r := New()
	r.Add(func() { ran = true })
	r.Success()
	r.Fail()
	if ran {
		t.Fatal("undo step ran after Success")
	}
}

func TestCloneHandsOverSteps(t *testing.T) {
	var got []int
	r := New()
	r.Add(func() { got = append(got, 1) })
	r.Add(func() { got = append(got, 2) })
	undo := r.Clone()
	r.Fail()
	if len(got) != 0 {
		t.Fatalf("Fail after Clone ran steps: %v", got)
	}
	undo()
	if want := []int{2, 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("cloned undo order = %v, want %v", got, want)
	}
}
