// Package interop drives the shipped rust-azure-provider binary with the
// Secrets Store CSI Driver's own client code (the interop judge): its plugin
// client builder, MountContent, file writer and Secret-sync helpers.
//
// The same source is built against driver v1.6.0 (go.mod) and the newest
// v1.5.x (go.v15.mod); see ../README.md.
package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
	secretsstore "sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/fileutil"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/secretutil"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

const (
	// providerName is what the SecretProviderClass names in spec.provider.
	providerName = "rust-azure"
	// driverModule is the module whose client code is under test.
	driverModule = "sigs.k8s.io/secrets-store-csi-driver"
	// fullEnv switches the Mount tests from the current error path to the
	// success path (set once a fake Azure answers the provider).
	fullEnv = "RUST_AZURE_INTEROP_FULL"
	// binEnv names the provider binary under test.
	binEnv = "RUST_AZURE_PROVIDER_BIN"

	// Values of the seed scenario (shared/spec/seed-scenario.md).
	seedFile         = "ExamplePassword"
	seedValue        = "hVFkk965BuUv"
	seedObjectID     = "secret/ExamplePassword"
	seedSecretName   = "test-secret"
	seedSecretKey    = "key"
	seedPodUID       = "5f3c2a8e-8a47-4d6b-9f0e-2b7d4c1e9a60"
	seedTenantID     = "6f1c3b2a-9d84-4e57-a0c1-3e5f7b9d2c48"
	seedSubscription = "2b8e4d6f-1a3c-4e5b-9d7f-0c2e4a6b8d10"
)

// fullMode reports whether the success-path assertions are switched on.
func fullMode() bool { return os.Getenv(fullEnv) == "1" }

// repoRoot is the checkout root (go test runs in tests/interop/go).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatalf("repo root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "Cargo.toml")); err != nil {
		t.Fatalf("repo root %s has no Cargo.toml: %v", root, err)
	}
	return root
}

// crateVersion is the [package] version of Cargo.toml, which Version must report.
func crateVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "Cargo.toml"))
	if err != nil {
		t.Fatalf("read Cargo.toml: %v", err)
	}
	m := regexp.MustCompile(`(?m)^version\s*=\s*"([^"]+)"`).FindSubmatch(data)
	if m == nil {
		t.Fatal("no version in Cargo.toml")
	}
	return string(m[1])
}

// driverVersion is the driver release this test binary was built against,
// read from the module-cache path of a compiled driver function (test
// binaries carry no dependency build info).
func driverVersion(t *testing.T) string {
	t.Helper()
	fn := runtime.FuncForPC(reflect.ValueOf(secretsstore.MountContent).Pointer())
	if fn == nil {
		t.Fatal("no symbol for secretsstore.MountContent")
	}
	file, _ := fn.FileLine(fn.Entry())
	m := regexp.MustCompile(`secrets-store-csi-driver@(v[0-9][^/]*)/`).FindStringSubmatch(filepath.ToSlash(file))
	if m == nil {
		t.Fatalf("cannot tell the driver version from %s", file)
	}
	return m[1]
}

// shortTempDir keeps socket paths far below the 108-byte sun_path limit.
func shortTempDir(t *testing.T, prefix string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		t.Fatalf("temp dir: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// syncBuffer collects the provider's output from its pipe goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startProvider runs the shipped binary on a fresh provider dir and returns
// that dir once rust-azure.sock exists. The process is stopped with SIGTERM
// at cleanup; its output is logged when the test failed.
func startProvider(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(binEnv)
	if bin == "" {
		t.Fatalf("%s is not set; build the provider (cargo build --locked) and point it at target/debug/rust-azure-provider (tests/interop/run.sh does this)", binEnv)
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() {
		t.Fatalf("%s=%s is not a file: %v", binEnv, bin, err)
	}
	dir := shortTempDir(t, "rap-go-")
	out := &syncBuffer{}
	cmd := exec.Command(bin,
		"--provider-dir", dir,
		"--health-addr", "127.0.0.1:0",
		"--metrics-addr", "127.0.0.1:0",
		"--log-filter", "rust_azure_provider=debug,h2::server=debug,warn",
	)
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("provider did not exit cleanly after SIGTERM: %v", err)
			}
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("provider ignored SIGTERM for 15s")
		}
		if t.Failed() {
			t.Logf("provider output:\n%s", out.String())
		}
	})
	sock := filepath.Join(dir, providerName+".sock")
	deadline := time.Now().Add(30 * time.Second)
	for {
		if st, err := os.Stat(sock); err == nil && st.Mode()&os.ModeSocket != 0 {
			return dir
		}
		select {
		case err := <-exited:
			t.Fatalf("provider exited before creating %s: %v\n%s", sock, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("provider did not create %s within 30s\n%s", sock, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// driverClient is the driver's own client for provider "rust-azure" in dir,
// built exactly as the driver builds it (NewPluginClientBuilder + Get).
func driverClient(t *testing.T, dir string) v1alpha1.CSIDriverProviderClient {
	t.Helper()
	builder := secretsstore.NewPluginClientBuilder([]string{dir})
	t.Cleanup(builder.Cleanup)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := builder.Get(ctx, providerName)
	if err != nil {
		t.Fatalf("driver client for %q in %s: %v", providerName, dir, err)
	}
	return client
}

// driverMount is a Mount request the driver sends for a pod, with the SPC it
// came from (its secretObjects drive the Secret sync).
type driverMount struct {
	attributes string
	secrets    string
	permission string
	targetPath string
	spc        *secretsstorev1.SecretProviderClass
}

// seedMountRequest builds the seed scenario's Mount request from the shipped
// manifests (deploy/examples), placeholders filled in.
func seedMountRequest(t *testing.T, root string) driverMount {
	t.Helper()
	repo := repoRoot(t)
	spcYAML, err := os.ReadFile(filepath.Join(repo, "deploy", "examples", "seed-secretproviderclass.yaml"))
	if err != nil {
		t.Fatalf("read seed SPC: %v", err)
	}
	// The user fills in these placeholders before applying the manifest.
	spcYAML = bytes.ReplaceAll(spcYAML, []byte("<subscription id>"), []byte(seedSubscription))
	spcYAML = bytes.ReplaceAll(spcYAML, []byte("<tenant id>"), []byte(seedTenantID))
	return mountRequest(t, root, spcYAML, filepath.Join(repo, "deploy", "examples", "seed-pod.yaml"))
}

// certMountRequest builds the certificate scenario's Mount request from
// testdata/tls-spc.yaml and testdata/tls-pod.yaml.
func certMountRequest(t *testing.T, root string) driverMount {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "tests", "interop", "testdata")
	spcYAML, err := os.ReadFile(filepath.Join(dir, "tls-spc.yaml"))
	if err != nil {
		t.Fatalf("read TLS SPC: %v", err)
	}
	return mountRequest(t, root, spcYAML, filepath.Join(dir, "tls-pod.yaml"))
}

// mountRequest builds a pod's Mount request the way NodePublishVolume does:
// SPC parameters, then every volume-context key (pod volumeAttributes +
// kubelet pod info) copied over them, each JSON-encoded. The target path
// follows kubelet's layout under root.
func mountRequest(t *testing.T, root string, spcYAML []byte, podPath string) driverMount {
	t.Helper()
	spc := &secretsstorev1.SecretProviderClass{}
	if err := yaml.UnmarshalStrict(spcYAML, spc); err != nil {
		t.Fatalf("decode SPC: %v", err)
	}
	if spc.Spec.Provider != providerName {
		t.Fatalf("SPC %s names provider %q, want %q", spc.Name, spc.Spec.Provider, providerName)
	}

	podYAML, err := os.ReadFile(podPath)
	if err != nil {
		t.Fatalf("read pod: %v", err)
	}
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(podYAML, pod); err != nil {
		t.Fatalf("decode pod %s: %v", podPath, err)
	}
	namespace := pod.Namespace
	if namespace == "" {
		namespace = "default"
	}
	serviceAccount := pod.Spec.ServiceAccountName
	if serviceAccount == "" {
		serviceAccount = "default"
	}
	var volume *corev1.Volume
	for i := range pod.Spec.Volumes {
		if v := &pod.Spec.Volumes[i]; v.CSI != nil && v.CSI.Driver == "secrets-store.csi.k8s.io" {
			volume = v
		}
	}
	if volume == nil {
		t.Fatalf("pod %s has no secrets-store.csi.k8s.io volume", podPath)
	}
	if volume.CSI.VolumeAttributes["secretProviderClass"] != spc.Name {
		t.Fatalf("pod volume names SPC %q, want %q", volume.CSI.VolumeAttributes["secretProviderClass"], spc.Name)
	}

	volumeContext := maps.Clone(volume.CSI.VolumeAttributes)
	volumeContext["csi.storage.k8s.io/pod.name"] = pod.Name
	volumeContext["csi.storage.k8s.io/pod.namespace"] = namespace
	volumeContext["csi.storage.k8s.io/pod.uid"] = seedPodUID
	volumeContext["csi.storage.k8s.io/serviceAccount.name"] = serviceAccount
	volumeContext["csi.storage.k8s.io/ephemeral"] = "true"

	parameters := maps.Clone(spc.Spec.Parameters)
	maps.Copy(parameters, volumeContext)
	attributes, err := json.Marshal(parameters)
	if err != nil {
		t.Fatal(err)
	}
	// No nodePublishSecretRef: the driver marshals a nil map, i.e. "null".
	secrets, err := json.Marshal(map[string]string(nil))
	if err != nil {
		t.Fatal(err)
	}
	permission, err := json.Marshal(os.FileMode(0o644))
	if err != nil {
		t.Fatal(err)
	}
	if string(secrets) != "null" || string(permission) != "420" {
		t.Fatalf("unexpected encodings secrets=%s permission=%s", secrets, permission)
	}
	targetPath := filepath.Join(root, "pods", seedPodUID, "volumes", "kubernetes.io~csi", volume.Name, "mount")
	if err := os.MkdirAll(targetPath, 0o750); err != nil {
		t.Fatal(err)
	}
	return driverMount{
		attributes: string(attributes),
		secrets:    string(secrets),
		permission: string(permission),
		targetPath: targetPath,
		spc:        spc,
	}
}

// mountContent calls the driver's MountContent with req, exactly as
// NodePublishVolume does for a first mount (no current object versions).
func mountContent(t *testing.T, client v1alpha1.CSIDriverProviderClient, req driverMount) (map[string]string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return secretsstore.MountContent(ctx, client, req.attributes, req.secrets, req.targetPath, req.permission, nil)
}

// expectSeedMountSuccess asserts the whole success path of the seed scenario:
// MountContent's result, the files the driver's writer put in targetPath and
// the Secret data the driver's sync reconciler would build from them.
func expectSeedMountSuccess(t *testing.T, req driverMount, versions map[string]string, errorCode string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("MountContent failed (error code %q): %v", errorCode, err)
	}
	if errorCode != "" {
		t.Fatalf("MountContent returned error code %q", errorCode)
	}
	if len(versions) != 1 || versions[seedObjectID] == "" {
		t.Fatalf("object versions = %v, want exactly %q with a non-empty version", versions, seedObjectID)
	}
	expectSeedFiles(t, req.targetPath)
	data := syncSecretData(t, req, seedSecretName, corev1.SecretTypeOpaque)
	want := map[string]string{seedSecretKey: seedValue}
	got := map[string]string{}
	for k, v := range data {
		got[k] = string(v)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("synced Secret %s data = %q, want %q", seedSecretName, got, want)
	}
}

// expectSeedFiles asserts the files of the seed scenario in targetPath: exactly
// ExamplePassword with the secret's value (no trailing newline), mode 0644.
func expectSeedFiles(t *testing.T, targetDir string) {
	t.Helper()
	files, err := fileutil.GetMountedFiles(targetDir)
	if err != nil {
		t.Fatalf("mounted files in %s: %v", targetDir, err)
	}
	if len(files) != 1 || files[seedFile] == "" {
		t.Fatalf("mounted files = %v, want exactly %q", files, seedFile)
	}
	path := filepath.Join(targetDir, seedFile)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if string(content) != seedValue {
		t.Fatalf("%s has %d bytes, not the seed value", seedFile, len(content))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o644 {
		t.Fatalf("%s mode = %#o, want 0644", seedFile, mode)
	}
}

// syncSecretData builds the data of every secretObjects entry of req's SPC
// from the mounted files with the driver's own helpers, as its
// SecretProviderClassPodStatus reconciler does, and returns the data of the
// Secret secretName, which must have type wantType.
func syncSecretData(t *testing.T, req driverMount, secretName string, wantType corev1.SecretType) map[string][]byte {
	t.Helper()
	if uid := fileutil.GetPodUIDFromTargetPath(req.targetPath); uid != seedPodUID {
		t.Fatalf("driver reads pod UID %q from target path, want %q", uid, seedPodUID)
	}
	files, err := fileutil.GetMountedFiles(req.targetPath)
	if err != nil {
		t.Fatalf("mounted files: %v", err)
	}
	var found map[string][]byte
	for _, obj := range req.spc.Spec.SecretObjects {
		if err := secretutil.ValidateSecretObject(*obj); err != nil {
			t.Fatalf("secretObjects entry %q: %v", obj.SecretName, err)
		}
		secretType := secretutil.GetSecretType(strings.TrimSpace(obj.Type))
		data, err := secretutil.GetSecretData(obj.Data, secretType, files)
		if err != nil {
			t.Fatalf("secret data for %q: %v", obj.SecretName, err)
		}
		if strings.TrimSpace(obj.SecretName) == secretName {
			if secretType != wantType {
				t.Fatalf("%s type = %q, want %q", secretName, secretType, wantType)
			}
			found = data
		}
	}
	if found == nil {
		t.Fatalf("SPC %s has no secretObjects entry %q", req.spc.Name, secretName)
	}
	return found
}

// transportMarkers appear in client-side statuses that no provider sent:
// refused or broken connections, h2 stream resets (the :authority failure),
// client deadlines.
var transportMarkers = []string{
	"RST_STREAM",
	"connection refused",
	"connection error",
	"transport",
	"error reading from server",
	"connection closed",
	"EOF",
	"context deadline exceeded",
	"context canceled",
	"malformed",
	"PROTOCOL_ERROR",
}

// providerCodes are the codes the provider uses (azure-behaviour.md §12.1).
var providerCodes = map[codes.Code]bool{
	codes.InvalidArgument:    true,
	codes.FailedPrecondition: true,
	codes.Unauthenticated:    true,
	codes.PermissionDenied:   true,
	codes.NotFound:           true,
	codes.ResourceExhausted:  true,
	codes.DeadlineExceeded:   true,
	codes.Unavailable:        true,
	codes.Internal:           true,
}

// expectProviderStatus asserts that err is a gRPC status the provider sent
// (one of its codes, a message of its own), not a transport failure.
func expectProviderStatus(t *testing.T, err error) *status.Status {
	t.Helper()
	if err == nil {
		t.Fatal("expected a gRPC status from the provider, got success")
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a gRPC status (%T): %v", err, err)
	}
	if !providerCodes[st.Code()] {
		t.Fatalf("code %s is not one the provider uses: %v", st.Code(), err)
	}
	msg := st.Message()
	if strings.TrimSpace(msg) == "" {
		t.Fatalf("status %s has an empty message", st.Code())
	}
	for _, m := range transportMarkers {
		if strings.Contains(msg, m) {
			t.Fatalf("status looks like a transport failure, not a provider answer (%q): %v", m, err)
		}
	}
	return st
}

// expectEmptyDir asserts that a failed Mount left nothing in path.
func expectEmptyDir(t *testing.T, path string) {
	t.Helper()
	entries, err := os.ReadDir(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if len(entries) != 0 {
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("failed Mount left %v in %s", names, path)
	}
}
