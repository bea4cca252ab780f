package runners

import (
	"sync"
	"testing"
)

func TestActiveJobs(t *testing.T) {
	var a ActiveJobs
	if a.Running("r1") {
		t.Fatal("an empty set runs r1")
	}
	if !a.Begin("r1") {
		t.Fatal("Begin on an empty set refused")
	}
	if a.Begin("r1") {
		t.Fatal("a second Begin of a running id was admitted")
	}
	if !a.Running("r1") || a.Running("r2") {
		t.Fatal("Running does not follow Begin")
	}
	a.End("r1")
	if a.Running("r1") || !a.Begin("r1") {
		t.Fatal("End did not free the id")
	}

	// Of many concurrent Begins of one id, exactly one wins.
	var b ActiveJobs
	var wg sync.WaitGroup
	wins := make(chan bool, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wins <- b.Begin("same")
		}()
	}
	wg.Wait()
	close(wins)
	n := 0
	for w := range wins {
		if w {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d concurrent Begins of one id won, want 1", n)
	}
}
