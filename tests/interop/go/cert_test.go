package interop

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"

	internalerrors "sigs.k8s.io/secrets-store-csi-driver/pkg/errors"
	secretsstore "sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store"
	"sigs.k8s.io/secrets-store-csi-driver/pkg/util/fileutil"
	"sigs.k8s.io/secrets-store-csi-driver/provider/v1alpha1"
)

const (
	// Values of the certificate scenario (testdata/tls-spc.yaml): the
	// quickstart's stand-in vault serves a real PKCS#12 Key Vault recording
	// as the certificate-backed secret ingress-cert.
	certFile       = "ingress-cert"
	certObjectID   = "secret/ingress-cert"
	certSecretName = "ingress-tls-csi"
)

// TestMountCertificateScenario mounts a certificate-backed secret (PKCS#12 in
// Key Vault) through the driver's MountContent and builds the
// kubernetes.io/tls Secret from it with the driver's own secretutil helpers.
// Without RUST_AZURE_INTEROP_FULL=1 the provider must answer with a gRPC
// status of its own.
func TestMountCertificateScenario(t *testing.T) {
	dir := startProvider(t)
	client := driverClient(t, dir)
	req := certMountRequest(t, shortTempDir(t, "rap-kubelet-"))

	versions, errorCode, err := mountContent(t, client, req)
	if fullMode() {
		expectCertMountSuccess(t, req, versions, errorCode, err)
		return
	}
	t.Logf("%s is not 1: expecting the provider's error status", fullEnv)
	expectMountProviderError(t, client, req, versions, errorCode, err)
}

// expectCertMountSuccess asserts the whole success path of the certificate
// scenario: MountContent's result, the PEM file the driver's writer put in
// targetPath, and the tls.key/tls.crt the driver's sync would store.
func expectCertMountSuccess(t *testing.T, req driverMount, versions map[string]string, errorCode string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("MountContent failed (error code %q): %v", errorCode, err)
	}
	if errorCode != "" {
		t.Fatalf("MountContent returned error code %q", errorCode)
	}
	if len(versions) != 1 || versions[certObjectID] == "" {
		t.Fatalf("object versions = %v, want exactly %q with a non-empty version", versions, certObjectID)
	}
	certs := expectCertFile(t, req.targetPath)
	data := syncSecretData(t, req, certSecretName, corev1.SecretTypeTLS)
	expectTLSSecretData(t, data, certs)
}

// pemBlocks decodes every PEM block of data and fails on anything else
// (other than whitespace) before, between or after them.
func pemBlocks(t *testing.T, what string, data []byte) []*pem.Block {
	t.Helper()
	var blocks []*pem.Block
	rest := data
	for {
		trimmed := bytes.TrimLeft(rest, " \t\r\n")
		if len(trimmed) == 0 {
			break
		}
		if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
			t.Fatalf("%s: %d bytes that are not PEM after %d block(s)", what, len(trimmed), len(blocks))
		}
		var b *pem.Block
		b, rest = pem.Decode(trimmed)
		if b == nil {
			t.Fatalf("%s: undecodable PEM after %d block(s)", what, len(blocks))
		}
		if len(b.Headers) != 0 {
			t.Fatalf("%s: %s block %d has PEM headers %v", what, b.Type, len(blocks)+1, b.Headers)
		}
		blocks = append(blocks, b)
	}
	return blocks
}

func blockTypes(blocks []*pem.Block) []string {
	out := make([]string, 0, len(blocks))
	for _, b := range blocks {
		out = append(out, b.Type)
	}
	return out
}

// expectCertFile asserts the mounted file of the certificate scenario:
// exactly ingress-cert, mode 0644, one PKCS#8 PRIVATE KEY block first, then
// one or more CERTIFICATE blocks with the leaf (matching the key) first. It
// returns the DER certificates in file order.
func expectCertFile(t *testing.T, targetDir string) [][]byte {
	t.Helper()
	files, err := fileutil.GetMountedFiles(targetDir)
	if err != nil {
		t.Fatalf("mounted files in %s: %v", targetDir, err)
	}
	if len(files) != 1 || files[certFile] == "" {
		t.Fatalf("mounted files = %v, want exactly %q", files, certFile)
	}
	path := filepath.Join(targetDir, certFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o644 {
		t.Fatalf("%s mode = %#o, want 0644", certFile, mode)
	}
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	blocks := pemBlocks(t, certFile, content)
	types := blockTypes(blocks)
	if len(blocks) < 2 || types[0] != "PRIVATE KEY" {
		t.Fatalf("%s PEM blocks = %v, want PRIVATE KEY then CERTIFICATE(s)", certFile, types)
	}
	for i, ty := range types[1:] {
		if ty != "CERTIFICATE" {
			t.Fatalf("%s PEM block %d is %q, want CERTIFICATE (blocks %v)", certFile, i+2, ty, types)
		}
	}
	key, err := x509.ParsePKCS8PrivateKey(blocks[0].Bytes)
	if err != nil {
		t.Fatalf("%s: the PRIVATE KEY block is not PKCS#8: %v", certFile, err)
	}
	var ders [][]byte
	var chain []*x509.Certificate
	for i, b := range blocks[1:] {
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("%s: CERTIFICATE block %d does not parse: %v", certFile, i+1, err)
		}
		ders = append(ders, b.Bytes)
		chain = append(chain, c)
	}
	expectLeafFirst(t, certFile, chain, key)
	return ders
}

// expectLeafFirst: the first certificate carries the key's public key and
// every further one issued the one before it.
func expectLeafFirst(t *testing.T, what string, chain []*x509.Certificate, key crypto.PrivateKey) {
	t.Helper()
	signer, ok := key.(crypto.Signer)
	if !ok {
		t.Fatalf("%s: private key %T cannot sign", what, key)
	}
	pub, ok := chain[0].PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(signer.Public()) {
		t.Fatalf("%s: the first certificate (%s) does not carry the private key's public key", what, chain[0].Subject)
	}
	for i := 1; i < len(chain); i++ {
		if err := chain[i-1].CheckSignatureFrom(chain[i]); err != nil {
			t.Fatalf("%s: certificate %d (%s) is not issued by certificate %d (%s): %v",
				what, i, chain[i-1].Subject, i+1, chain[i].Subject, err)
		}
	}
	t.Logf("%s: leaf %s (issuer %s), %d certificate(s)", what, chain[0].Subject, chain[0].Issuer, len(chain))
}

// expectTLSSecretData asserts the kubernetes.io/tls Secret data the driver
// built: exactly tls.key and tls.crt; tls.crt holds the mounted certificates
// in the same order (leaf first); tls.key is the driver's PKCS#1/SEC1
// conversion of the key and matches the leaf.
func expectTLSSecretData(t *testing.T, data map[string][]byte, wantCerts [][]byte) {
	t.Helper()
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != corev1.TLSCertKey+","+corev1.TLSPrivateKeyKey {
		t.Fatalf("Secret %s keys = %v, want [tls.crt tls.key]", certSecretName, keys)
	}

	crt := pemBlocks(t, corev1.TLSCertKey, data[corev1.TLSCertKey])
	if len(crt) != len(wantCerts) {
		t.Fatalf("tls.crt has blocks %v, want %d CERTIFICATE(s)", blockTypes(crt), len(wantCerts))
	}
	var chain []*x509.Certificate
	for i, b := range crt {
		if b.Type != "CERTIFICATE" || !bytes.Equal(b.Bytes, wantCerts[i]) {
			t.Fatalf("tls.crt block %d (%s) is not certificate %d of the mounted file", i+1, b.Type, i+1)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatalf("tls.crt block %d does not parse as X.509: %v", i+1, err)
		}
		chain = append(chain, c)
	}

	key := pemBlocks(t, corev1.TLSPrivateKeyKey, data[corev1.TLSPrivateKeyKey])
	if len(key) != 1 {
		t.Fatalf("tls.key has blocks %v, want one private key", blockTypes(key))
	}
	var parsed crypto.PrivateKey
	var err error
	switch key[0].Type {
	case "RSA PRIVATE KEY":
		parsed, err = x509.ParsePKCS1PrivateKey(key[0].Bytes)
	case "EC PRIVATE KEY":
		parsed, err = x509.ParseECPrivateKey(key[0].Bytes)
	default:
		t.Fatalf("tls.key block is %q, want the driver's RSA PRIVATE KEY or EC PRIVATE KEY", key[0].Type)
	}
	if err != nil {
		t.Fatalf("tls.key (%s) does not parse: %v", key[0].Type, err)
	}
	expectLeafFirst(t, "tls.crt/tls.key", chain, parsed)

	// What an ingress controller does with the Secret.
	pair, err := tls.X509KeyPair(data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey])
	if err != nil {
		t.Fatalf("tls.X509KeyPair(tls.crt, tls.key): %v", err)
	}
	if len(pair.Certificate) != len(wantCerts) {
		t.Fatalf("key pair has %d certificates, want %d", len(pair.Certificate), len(wantCerts))
	}
}

// expectMountProviderError asserts the failure path of a Mount: a status the
// provider sent, the driver's GRPCProviderError, nothing written, and the
// connection still answering Version.
func expectMountProviderError(t *testing.T, client v1alpha1.CSIDriverProviderClient, req driverMount, versions map[string]string, errorCode string, err error) {
	t.Helper()
	st := expectProviderStatus(t, err)
	t.Logf("provider answered %s: %s", st.Code(), st.Message())
	if errorCode != internalerrors.GRPCProviderError {
		t.Fatalf("driver error code = %q, want %q", errorCode, internalerrors.GRPCProviderError)
	}
	if versions != nil {
		t.Fatalf("object versions on failure: %v", versions)
	}
	expectEmptyDir(t, req.targetPath)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := secretsstore.Version(ctx, client); err != nil {
		t.Fatalf("Version after the failed Mount: %v", err)
	}
}

// certProvider is an in-process provider built on the driver's generated
// server that answers with a known-good PEM (PKCS#8 key, leaf, CA).
type certProvider struct {
	v1alpha1.UnimplementedCSIDriverProviderServer
	mu       sync.Mutex
	requests []*v1alpha1.MountRequest
	pem      []byte
}

func (p *certProvider) Version(context.Context, *v1alpha1.VersionRequest) (*v1alpha1.VersionResponse, error) {
	return &v1alpha1.VersionResponse{Version: "v1alpha1", RuntimeName: "cert-fake", RuntimeVersion: "0"}, nil
}

func (p *certProvider) Mount(_ context.Context, req *v1alpha1.MountRequest) (*v1alpha1.MountResponse, error) {
	p.mu.Lock()
	p.requests = append(p.requests, req)
	p.mu.Unlock()
	return &v1alpha1.MountResponse{
		ObjectVersion: []*v1alpha1.ObjectVersion{{Id: certObjectID, Version: "53f7dd3711364168882b48026cb30f80"}},
		Files:         []*v1alpha1.File{{Path: certFile, Mode: 0o644, Contents: p.pem}},
	}, nil
}

// testChainPEM is a PKCS#8 key of the given kind, its leaf certificate and
// the CA that issued it, in the order Key Vault's rendering produces.
func testChainPEM(t *testing.T, rsaKey bool) []byte {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "interop test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	var leafKey crypto.Signer
	if rsaKey {
		leafKey, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		leafKey, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "ingress.example"},
		DNSNames:     []string{"ingress.example"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, leafKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})...)
	out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	return out
}

// TestHarnessSelfCheckCertificate runs the certificate scenario's full-mode
// assertions against a known-good in-process provider (RSA and EC keys, a
// two-certificate chain), so a failure in full mode points at
// rust-azure-provider, not at this harness.
func TestHarnessSelfCheckCertificate(t *testing.T) {
	for _, tc := range []struct {
		name string
		rsa  bool
	}{{"rsa", true}, {"ec", false}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortTempDir(t, "rap-fake-")
			lis, err := net.Listen("unix", filepath.Join(dir, providerName+".sock"))
			if err != nil {
				t.Fatalf("listen: %v", err)
			}
			fake := &certProvider{pem: testChainPEM(t, tc.rsa)}
			server := grpc.NewServer()
			v1alpha1.RegisterCSIDriverProviderServer(server, fake)
			go func() { _ = server.Serve(lis) }()
			t.Cleanup(server.Stop)

			client := driverClient(t, dir)
			req := certMountRequest(t, shortTempDir(t, "rap-kubelet-"))
			versions, errorCode, err := mountContent(t, client, req)
			expectCertMountSuccess(t, req, versions, errorCode, err)

			if len(fake.requests) != 1 {
				t.Fatalf("fake saw %d Mounts", len(fake.requests))
			}
			attrs := fake.requests[0].GetAttributes()
			for _, want := range []string{
				`"secretProviderClass":"ingress-tls"`,
				`"keyvaultName":"myk8skv"`,
				`"usePodIdentity":"true"`,
				`"csi.storage.k8s.io/pod.name":"inject-secrets-from-akv"`,
				`"csi.storage.k8s.io/pod.namespace":"default"`,
				`objectName: ingress-cert`,
			} {
				if !strings.Contains(attrs, want) {
					t.Errorf("attributes lack %s: %s", want, attrs)
				}
			}
		})
	}
}
