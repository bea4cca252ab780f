//go:build !linux

package agent

// scan reaps nothing where there is no /proc to find zombies in.
func (r *reaper) scan(parent int) int { return 0 }
