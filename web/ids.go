package web

import "regexp"

// idPattern is the shape of a run or deploy id (store.NewID: 32 lower-case
// hex digits); anything else, such as an id derived by an older mlbot, is
// no run or deploy, and is never looked up.
var idPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
