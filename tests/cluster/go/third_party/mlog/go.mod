// A stand-in for monis.app/mlog, which the Go module proxy reachable here
// refuses. The driver's main package needs only what is declared in mlog.go.
module monis.app/mlog

go 1.25

require k8s.io/klog/v2 v2.100.1
