//go:build !unix

package agentsrv

// noFollow is zero where the system has no O_NOFOLLOW; writeInto's
// Lstat check stands alone there.
const noFollow = 0
