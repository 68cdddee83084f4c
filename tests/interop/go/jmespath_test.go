package interop

import (
	"maps"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/fileutil"
)

const (
	// Values of the jmesPath scenario (testdata/json-spc.yaml): the
	// quickstart's stand-in vault holds the JSON document below as secret
	// db-config (examples/quickstart/scenario.rs, JSON_SECRET_VALUE).
	jsonObjectID   = "secret/db-config"
	jsonSecretName = "db-credentials"
	jsonValue      = `{"username":"app-user","password":"Jm3sPath-7f3Kq9","host":"db.example.internal","port":5432}`
)

// TestMountJMESPathScenario mounts a secret holding JSON with jmesPath
// entries through the driver's MountContent, checks the derived files the
// driver's writer put on disk, and syncs two of them into an Opaque Secret
// with the driver's own secretutil helpers. Without RUST_AZURE_INTEROP_FULL=1
// the provider must answer with a gRPC status of its own.
func TestMountJMESPathScenario(t *testing.T) {
	dir := startProvider(t)
	client := driverClient(t, dir)
	req := jsonMountRequest(t, shortTempDir(t, "rap-kubelet-"))

	versions, errorCode, err := mountContent(t, client, req)
	if !fullMode() {
		t.Logf("%s is not 1: expecting the provider's error status", fullEnv)
		expectMountProviderError(t, client, req, versions, errorCode, err)
		return
	}
	if err != nil {
		t.Fatalf("MountContent failed (error code %q): %v", errorCode, err)
	}
	if errorCode != "" {
		t.Fatalf("MountContent returned error code %q", errorCode)
	}
	// Derived files report no object versions of their own.
	if len(versions) != 1 || versions[jsonObjectID] == "" {
		t.Fatalf("object versions = %v, want exactly %q with a non-empty version", versions, jsonObjectID)
	}

	files, err := fileutil.GetMountedFiles(req.targetPath)
	if err != nil {
		t.Fatalf("mounted files in %s: %v", req.targetPath, err)
	}
	want := map[string]struct {
		content string
		mode    os.FileMode
	}{
		"db-config":        {jsonValue, 0o644},
		"db-username":      {"app-user", 0o644},
		"db-password":      {"Jm3sPath-7f3Kq9", 0o600},
		"db-endpoint.json": {`{"host":"db.example.internal","port":5432}`, 0o644},
	}
	if len(files) != len(want) {
		t.Fatalf("mounted files = %v, want %d files", files, len(want))
	}
	for name, w := range want {
		path := filepath.Join(req.targetPath, name)
		content, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("read %s: %v", path, err)
		}
		if string(content) != w.content {
			t.Fatalf("%s has %d bytes, not the expected %d", name, len(content), len(w.content))
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if mode := st.Mode().Perm(); mode != w.mode {
			t.Fatalf("%s mode = %#o, want %#o", name, mode, w.mode)
		}
	}

	data := syncSecretData(t, req, jsonSecretName, corev1.SecretTypeOpaque)
	got := map[string]string{}
	for k, v := range data {
		got[k] = string(v)
	}
	wantData := map[string]string{"username": "app-user", "password": "Jm3sPath-7f3Kq9"}
	if !maps.Equal(got, wantData) {
		t.Fatalf("synced Secret %s has keys %d, want username and password with the extracted values", jsonSecretName, len(got))
	}
}

// jsonMountRequest builds the jmesPath scenario's Mount request from
// testdata/json-spc.yaml and testdata/json-pod.yaml.
func jsonMountRequest(t *testing.T, root string) driverMount {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "tests", "interop", "testdata")
	spcYAML, err := os.ReadFile(filepath.Join(dir, "json-spc.yaml"))
	if err != nil {
		t.Fatalf("read JSON SPC: %v", err)
	}
	return mountRequest(t, root, spcYAML, filepath.Join(dir, "json-pod.yaml"))
}
