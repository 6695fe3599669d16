//go:build !unix

package uplink

import "os"

// allocated is the space a file takes on disk; without block counts, its size.
func allocated(fi os.FileInfo) int64 { return fi.Size() }
