//go:build !unix

package workspace

import "os"

// openFlags is plain read-only where FIFOs and O_NOFOLLOW do not exist in
// the Unix sense; os.Root still keeps every name inside the directory.
const openFlags = os.O_RDONLY
