//go:build !linux

package sandbox

import "context"

// MaybeInit does nothing where there are no sandboxes.
func MaybeInit() {}

// Run fails: sandboxes need Linux namespaces.
func Run(ctx context.Context, opts Options, step Step) (Result, error) {
	return Result{ExitCode: -1}, ErrUnsupported
}

// CheckMemoryCgroup fails: there are no cgroups here.
func CheckMemoryCgroup() error { return ErrUnsupported }
