//go:build !unix

package workspace_test

import "errors"

func mkfifoErr(string) error { return errors.New("no FIFOs on this system") }
