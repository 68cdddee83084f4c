package interop

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	internalerrors "sigs.k8s.io/secrets-store-csi-driver/pkg/errors"
	secretsstore "sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// expectedDriver is the driver release each modfile must build against. A modfile bumped without
// updating this table (and the README) fails here instead of silently testing another release.
var expectedDriver = map[string]string{
	"go.mod":     "v1.6.0",
	"go.v15.mod": "v1.5.6",
}

// modfileEnv names the modfile the test binary was built with (run.sh sets it for each run;
// unset means go.mod, Go's default). The build does not record -modfile, so it is passed in.
const modfileEnv = "RUST_AZURE_INTEROP_MODFILE"

// TestDriverVersionUnderTest guards the modfile selection: the driver module compiled into this
// binary is exactly the release pinned for the modfile in use.
func TestDriverVersionUnderTest(t *testing.T) {
	modfile := os.Getenv(modfileEnv)
	if modfile == "" {
		modfile = "go.mod"
	}
	want, ok := expectedDriver[modfile]
	if !ok {
		t.Fatalf("%s=%q: no expected driver version for that modfile", modfileEnv, modfile)
	}
	// `go test` binaries carry no module list in their build info, so the version comes from
	// the source path the driver's MountContent was compiled from (the module cache directory).
	v := driverVersion(t)
	t.Logf("modfile %s: driver client code under test %s@%s", modfile, driverModule, v)
	if v != want {
		t.Fatalf("modfile %s must build against %s %s, MountContent comes from %s", modfile, driverModule, want, v)
	}
}

// TestVersionThroughDriverClient: the driver's health check path. v1.6 sends
// :authority localhost, v1.5 the raw socket path; both must be answered.
func TestVersionThroughDriverClient(t *testing.T) {
	dir := startProvider(t)
	client := driverClient(t, dir)
	want := crateVersion(t)

	for i := range 2 { // the second call reuses the cached connection
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		runtimeVersion, err := secretsstore.Version(ctx, client)
		cancel()
		if err != nil {
			t.Fatalf("call %d: driver Version against %s (driver %s): %v", i+1, dir, driverVersion(t), err)
		}
		if runtimeVersion != want {
			t.Fatalf("runtime version = %q, want crate version %q", runtimeVersion, want)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := client.Version(ctx, &v1alpha1.VersionRequest{Version: "v1alpha1"})
	if err != nil {
		t.Fatalf("Version: %v", err)
	}
	if resp.GetVersion() != "v1alpha1" || resp.GetRuntimeName() != "rust-azure-provider" || resp.GetRuntimeVersion() != want {
		t.Fatalf("Version = {%q %q %q}, want {v1alpha1 rust-azure-provider %s}",
			resp.GetVersion(), resp.GetRuntimeName(), resp.GetRuntimeVersion(), want)
	}
}

// TestMountSeedScenario sends the seed scenario's Mount through MountContent.
// Without RUST_AZURE_INTEROP_FULL=1 the provider has no Azure to talk to and
// must answer with a gRPC status of its own; with it, the seed files and the
// synced Secret data are asserted.
func TestMountSeedScenario(t *testing.T) {
	dir := startProvider(t)
	client := driverClient(t, dir)
	req := seedMountRequest(t, shortTempDir(t, "rap-kubelet-"))

	versions, errorCode, err := mountContent(t, client, req)
	if fullMode() {
		expectSeedMountSuccess(t, req, versions, errorCode, err)
		return
	}
	t.Logf("%s is not 1: expecting the provider's error status", fullEnv)
	expectMountProviderError(t, client, req, versions, errorCode, err)
}

// TestMountUndecodableAttributes: a request the provider cannot decode gets
// InvalidArgument naming the attributes, and the provider keeps serving.
func TestMountUndecodableAttributes(t *testing.T) {
	dir := startProvider(t)
	client := driverClient(t, dir)
	target := shortTempDir(t, "rap-target-")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, errorCode, err := secretsstore.MountContent(ctx, client, `{"keyvaultName": 42`, "null", target, "420", nil)
	st := expectProviderStatus(t, err)
	if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "attributes") {
		t.Fatalf("got %s %q, want InvalidArgument naming the attributes", st.Code(), st.Message())
	}
	if errorCode != internalerrors.GRPCProviderError {
		t.Fatalf("driver error code = %q", errorCode)
	}
	expectEmptyDir(t, target)

	if _, err := secretsstore.Version(ctx, client); err != nil {
		t.Fatalf("Version after the rejected Mount: %v", err)
	}
}
