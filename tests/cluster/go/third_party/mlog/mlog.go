// Package mlog is a minimal stand-in for monis.app/mlog covering what the
// secrets-store-csi-driver's main package calls: log format selection, the
// klog level/format setup, and error/fatal reporting.
package mlog

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"

	"k8s.io/klog/v2"
)

// LogFormat selects the driver's log encoding.
type LogFormat string

const (
	// FormatText is klog's plain text output.
	FormatText LogFormat = "text"
	// FormatJSON is requested by the driver's --log-format-json flag; the
	// stand-in keeps text output, which is all the cluster tests read.
	FormatJSON LogFormat = "json"
)

// Setup returns the function the driver defers to flush logs at exit.
func Setup() func() {
	return klog.Flush
}

// ValidateAndSetKlogLevelAndFormatGlobally accepts the level the driver
// computed from its -v flag and applies it to klog.
func ValidateAndSetKlogLevelAndFormatGlobally(_ context.Context, level klog.Level, format LogFormat) error {
	if level < 0 {
		return fmt.Errorf("invalid klog level %d", level)
	}
	if format != FormatText && format != FormatJSON {
		return fmt.Errorf("invalid log format %q", format)
	}
	if f := flag.Lookup("v"); f != nil {
		return f.Value.Set(strconv.Itoa(int(level)))
	}
	return nil
}

// Error logs msg with err and key/value pairs.
func Error(msg string, err error, keysAndValues ...any) {
	klog.ErrorS(err, msg, keysAndValues...)
}

// Fatal reports err with its key/value pairs on stderr and exits the process.
func Fatal(err error, keysAndValues ...any) {
	klog.Flush()
	fmt.Fprintln(os.Stderr, append([]any{"fatal:", err}, keysAndValues...)...)
	os.Exit(255)
}
