// Package mlog is a minimal stand-in for monis.app/mlog: the driver code that
// the interop tests import references only Fatal, on paths the tests never run.
package mlog

import (
	"fmt"
	"os"
)

// Fatal reports err with its key/value pairs on stderr and exits the process.
func Fatal(err error, keysAndValues ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"fatal:", err}, keysAndValues...)...)
	os.Exit(255)
}
