package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"

	secretsstore "sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

// tapListener records every byte clients send, so the :authority the driver's
// client puts on the wire can be read back independently of the server.
type tapListener struct {
	net.Listener
	mu    sync.Mutex
	conns []*bytes.Buffer
}

type tapConn struct {
	net.Conn
	l   *tapListener
	buf *bytes.Buffer
}

func (l *tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	buf := &bytes.Buffer{}
	l.mu.Lock()
	l.conns = append(l.conns, buf)
	l.mu.Unlock()
	return &tapConn{Conn: c, l: l, buf: buf}, nil
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.l.mu.Lock()
	c.buf.Write(p[:n])
	c.l.mu.Unlock()
	return n, err
}

// authorities decodes the HEADERS frames of every recorded connection and
// returns the :authority values in order.
func (l *tapListener) authorities(t *testing.T) []string {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, buf := range l.conns {
		data := buf.Bytes()
		if !bytes.HasPrefix(data, []byte(http2.ClientPreface)) {
			t.Fatalf("connection does not start with the HTTP/2 preface: %q", data[:min(len(data), 24)])
		}
		fr := http2.NewFramer(nil, bytes.NewReader(data[len(http2.ClientPreface):]))
		fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		for {
			f, err := fr.ReadFrame()
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			if err != nil {
				t.Fatalf("decode recorded frames: %v", err)
			}
			if mh, ok := f.(*http2.MetaHeadersFrame); ok {
				out = append(out, mh.PseudoValue("authority"))
			}
		}
	}
	return out
}

// seedProvider is an in-process provider built on the driver's generated
// server: it answers the seed Mount the way rust-azure-provider will once a
// fake Azure is wired in.
type seedProvider struct {
	v1alpha1.UnimplementedCSIDriverProviderServer
	mu       sync.Mutex
	requests []*v1alpha1.MountRequest
}

func (p *seedProvider) Version(context.Context, *v1alpha1.VersionRequest) (*v1alpha1.VersionResponse, error) {
	return &v1alpha1.VersionResponse{Version: "v1alpha1", RuntimeName: "seed-fake", RuntimeVersion: "0"}, nil
}

func (p *seedProvider) Mount(_ context.Context, req *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	p.mu.Lock()
	p.requests = append(p.requests, req)
	p.mu.Unlock()
	return &v1alpha1.MountResponse{
		ObjectVersion: []*v1alpha1.ObjectVersion{{Id: seedObjectID, Version: "d3adb33fd3adb33fd3adb33fd3adb33f"}},
		Files:         []*v1alpha1.File{{Path: seedFile, Mode: 0o644, Contents: []byte(seedValue)}},
	}, nil
}

// TestHarnessSelfCheck runs the full-mode assertions against a known-good
// in-process provider, so that a failure after RUST_AZURE_INTEROP_FULL=1 is
// switched on points at rust-azure-provider, not at this harness. It also
// records the :authority this driver version's client really sends.
func TestHarnessSelfCheck(t *testing.T) {
	dir := shortTempDir(t, "rap-fake-")
	sock := filepath.Join(dir, providerName+".sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("listen %s: %v", sock, err)
	}
	tap := &tapListener{Listener: lis}
	fake := &seedProvider{}
	server := grpc.NewServer()
	v1alpha1.RegisterCSIDriverProviderServer(server, fake)
	go func() { _ = server.Serve(tap) }()
	t.Cleanup(server.Stop)

	client := driverClient(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if v, err := secretsstore.Version(ctx, client); err != nil || v != "0" {
		t.Fatalf("Version against the fake: %q, %v", v, err)
	}

	req := seedMountRequest(t, shortTempDir(t, "rap-kubelet-"))
	versions, errorCode, err := mountContent(t, client, req)
	expectSeedMountSuccess(t, req, versions, errorCode, err)

	// The request is the seed scenario's, as the driver sends it.
	if len(fake.requests) != 1 {
		t.Fatalf("fake saw %d Mounts", len(fake.requests))
	}
	got := fake.requests[0]
	var attrs map[string]string
	if err := json.Unmarshal([]byte(got.GetAttributes()), &attrs); err != nil {
		t.Fatalf("attributes are not a JSON object of strings: %v", err)
	}
	for key, want := range map[string]string{
		"secretProviderClass":                    "spc-myk8skv",
		"keyvaultName":                           "myk8skv",
		"usePodIdentity":                         "true",
		"tenantId":                               seedTenantID,
		"csi.storage.k8s.io/pod.name":            "inject-secrets-from-akv",
		"csi.storage.k8s.io/pod.namespace":       "default",
		"csi.storage.k8s.io/pod.uid":             seedPodUID,
		"csi.storage.k8s.io/serviceAccount.name": "default",
		"csi.storage.k8s.io/ephemeral":           "true",
	} {
		if attrs[key] != want {
			t.Errorf("attribute %s = %q, want %q", key, attrs[key], want)
		}
	}
	if !strings.Contains(attrs["objects"], "objectName: ExamplePassword") {
		t.Errorf("objects attribute = %q", attrs["objects"])
	}
	if got.GetSecrets() != "null" || got.GetPermission() != "420" || got.GetTargetPath() != req.targetPath {
		t.Errorf("secrets=%q permission=%q target=%q", got.GetSecrets(), got.GetPermission(), got.GetTargetPath())
	}
	if len(got.GetCurrentObjectVersion()) != 0 {
		t.Errorf("first mount sent current object versions %v", got.GetCurrentObjectVersion())
	}

	// Which :authority does this driver version send?
	auths := tap.authorities(t)
	if len(auths) < 2 {
		t.Fatalf("recorded %d requests, want Version and Mount", len(auths))
	}
	want := "localhost"
	if strings.HasPrefix(driverVersion(t), "v1.5.") {
		want = sock
	}
	for _, a := range auths {
		if a != want {
			t.Fatalf("driver %s sent :authority %q, want %q", driverVersion(t), a, want)
		}
	}
	t.Logf("driver %s sends :authority %q", driverVersion(t), auths[0])
}
