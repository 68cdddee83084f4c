// A stand-in for monis.app/mlog, which the Go module proxy reachable here does
// not serve. The driver's packages under test reference only mlog.Fatal (in its
// gRPC server and rotation reconciler, neither of which these tests run).
module monis.app/mlog

go 1.21
