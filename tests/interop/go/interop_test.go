package interop

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	internalerrors "sigs.k8s.io/secrets-store-csi-driver/pkg/errors"
	secretsstore "sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// TestDriverVersionUnderTest guards the modfile selection: go.mod must build
// against v1.6.x, go.v15.mod against v1.5.x.
func TestDriverVersionUnderTest(t *testing.T) {
	v := driverVersion(t)
	t.Logf("driver client code under test: %s@%s", driverModule, v)
	if !strings.HasPrefix(v, "v1.6.") && !strings.HasPrefix(v, "v1.5.") {
		t.Fatalf("unexpected driver version %s", v)
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
