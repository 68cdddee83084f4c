package main

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"rust-azure-provider/cluster/kubelet/standin"
)

const seedVolume = "secrets-store-inline"

var seedPod *corev1.Pod

// seed: the walkthrough through the real driver: SecretProviderClass
// spc-myk8skv and Pod inject-secrets-from-akv from deploy/examples; the file
// in the driver's tmpfs, the driver's SecretProviderClassPodStatus and its
// Secret test-secret, and the pod's SECRET resolved from that Secret.
func (e *env) seed() error {
	if _, err := e.createSPC("default", "deploy/examples/seed-secretproviderclass.yaml", nil); err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(e.repo, "deploy/examples/seed-pod.yaml"))
	if err != nil {
		return err
	}
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(raw, &pod); err != nil {
		return fmt.Errorf("seed-pod.yaml: %w", err)
	}
	pod.Namespace = "default"
	pod.Spec.NodeName = e.node
	created, err := e.createPod(&pod)
	if err != nil {
		return err
	}
	seedPod = created
	envs, err := e.waitStarted(created)
	if err != nil {
		return err
	}
	target := e.kubelet.TargetPath(created.UID, seedVolume)
	if fs := mountFSType(target); fs != "tmpfs" {
		return check(false, "%s is not a tmpfs mount (found %q)", target, fs)
	}
	names, err := files(target)
	if err != nil {
		return err
	}
	if err := check(slices.Equal(names, []string{"ExamplePassword"}), "files in the volume: %v", names); err != nil {
		return err
	}
	content, err := os.ReadFile(filepath.Join(target, "ExamplePassword"))
	if err != nil {
		return err
	}
	if err := check(string(content) == seedValue, "ExamplePassword holds %d bytes, not the vault's value", len(content)); err != nil {
		return err
	}
	fmt.Printf("   %s is a tmpfs mounted by the driver; ExamplePassword holds the vault's value\n", target)

	spcps, err := e.spcps(created, "spc-myk8skv")
	if err != nil {
		return fmt.Errorf("the driver's SecretProviderClassPodStatus: %w", err)
	}
	versions := objectVersions(spcps)
	mountedFlag, _, _ := unstructured.NestedBool(spcps.Object, "status", "mounted")
	if err := check(versions["secret/ExamplePassword"] == seedVersion && mountedFlag, "SecretProviderClassPodStatus %s: mounted=%t objects=%v", spcps.GetName(), mountedFlag, versions); err != nil {
		return err
	}
	fmt.Printf("   SecretProviderClassPodStatus %s: mounted, objects %v\n", spcps.GetName(), versions)

	secret, err := e.syncedSecret("default", "test-secret", spcps)
	if err != nil {
		return err
	}
	if err := check(string(secret.Data["key"]) == seedValue && secret.Type == corev1.SecretTypeOpaque, "Secret test-secret: type %s, key of %d bytes", secret.Type, len(secret.Data["key"])); err != nil {
		return err
	}
	fmt.Printf("   Secret default/test-secret created by the driver: type %s, labels %v, owner %s/%s\n", secret.Type, secret.Labels, secret.OwnerReferences[0].Kind, secret.OwnerReferences[0].Name)

	value, ok := envs["nginx"]["SECRET"]
	if err := check(ok && value == seedValue, "the pod's SECRET resolved to %d bytes", len(value)); err != nil {
		return err
	}
	fmt.Printf("SECRET=%s\n", value)
	return nil
}

// syncedSecret waits for the Secret the driver creates from secretObjects:
// marked with the driver's label, and owned by the pod's
// SecretProviderClassPodStatus (for a pod without owners; the driver's
// patcher adds the reference every 5s).
func (e *env) syncedSecret(namespace, name string, spcps *unstructured.Unstructured) (*corev1.Secret, error) {
	var secret *corev1.Secret
	err := e.waitFor(fmt.Sprintf("Secret %s/%s from secretObjects, owned by %s", namespace, name, spcps.GetName()), func() (bool, string, error) {
		s, err := e.kube.CoreV1().Secrets(namespace).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		if s.Labels["secrets-store.csi.k8s.io/managed"] != "true" {
			return false, fmt.Sprintf("labels %v lack secrets-store.csi.k8s.io/managed=true", s.Labels), nil
		}
		for _, o := range s.OwnerReferences {
			if o.Kind == "SecretProviderClassPodStatus" && o.Name == spcps.GetName() && o.UID == spcps.GetUID() {
				secret = s
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("owner references %v", s.OwnerReferences), nil
	})
	return secret, err
}

// rotation: a new version in Key Vault reaches the file, the
// SecretProviderClassPodStatus and Secret test-secret (v1.6: kubelet's
// republish; v1.5: the driver's rotation reconciler).
func (e *env) rotation() error {
	if seedPod == nil {
		return check(false, "needs the seed scenario's pod")
	}
	publishedBefore := e.kubelet.LastPublish(seedPod.UID, seedVolume)
	changedAt := time.Now()
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, "http://"+e.admin+"/secrets/ExamplePassword?version="+rotatedVersion, strings.NewReader(rotatedValue))
	if err != nil {
		return err
	}
	req.Host = e.adminHst
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the Azure stand-in's control endpoint: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the Azure stand-in's control endpoint answered %s", resp.Status)
	}
	fmt.Printf("   Key Vault myk8skv: ExamplePassword has a new version %s\n", rotatedVersion)
	target := e.kubelet.TargetPath(seedPod.UID, seedVolume)
	if err := e.waitFor("the rotated value in the file, the SecretProviderClassPodStatus and Secret test-secret", func() (bool, string, error) {
		content, _ := os.ReadFile(filepath.Join(target, "ExamplePassword"))
		spcps, err := e.spcps(seedPod, "spc-myk8skv")
		if err != nil {
			return false, err.Error(), nil
		}
		versions := objectVersions(spcps)
		s, err := e.kube.CoreV1().Secrets("default").Get(e.ctx, "test-secret", metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		fileOK := string(content) == rotatedValue
		statusOK := versions["secret/ExamplePassword"] == rotatedVersion
		secretOK := string(s.Data["key"]) == rotatedValue
		return fileOK && statusOK && secretOK, fmt.Sprintf("file rotated=%t, status versions=%v, secret rotated=%t", fileOK, versions, secretOK), nil
	}); err != nil {
		return err
	}
	fmt.Printf("   the file, SecretProviderClassPodStatus (version %s) and Secret test-secret hold the new version\n", rotatedVersion)
	// Which mechanism rotated: kubelet's republish (v1.6) or, with no
	// NodePublishVolume from kubelet since the change, the driver's
	// rotation reconciler (v1.5).
	last := e.kubelet.LastPublish(seedPod.UID, seedVolume)
	if e.republish {
		if err := check(last.After(changedAt), "no NodePublishVolume from kubelet since the change, yet the driver has no rotation reconciler"); err != nil {
			return err
		}
		fmt.Printf("   re-mounted by kubelet's republish (requiresRepublish): NodePublishVolume %.1fs after the change\n", last.Sub(changedAt).Seconds())
	} else {
		if err := check(last.Equal(publishedBefore), "kubelet republished (requiresRepublish is off); the rotation must come from the driver's reconciler"); err != nil {
			return err
		}
		fmt.Printf("   re-mounted by the driver's rotation reconciler (no NodePublishVolume from kubelet since the first mount)\n")
	}
	env, err := standin.ResolveEnv(e.ctx, e.kube, "default", seedPod.Spec.Containers[0])
	if err != nil {
		return err
	}
	if err := check(env["SECRET"] == rotatedValue, "a restarted container would see %d bytes", len(env["SECRET"])); err != nil {
		return err
	}
	fmt.Printf("rotated: SECRET=%s\n", env["SECRET"])
	return e.deletePod(seedPod, seedVolume)
}

// tls: a certificate-backed secret as a kubernetes.io/tls Secret
// (deploy/examples/tls-secretproviderclass.yaml), through workload identity.
func (e *env) tls() error {
	if _, err := e.createSPC("wi", "deploy/examples/tls-secretproviderclass.yaml", wiReplace(wiClientID)); err != nil {
		return err
	}
	pod, err := e.createPod(e.inlinePod("wi", "tls-app", workloadSA, "ingress-tls", nil))
	if err != nil {
		return err
	}
	if _, err := e.waitStarted(pod); err != nil {
		return err
	}
	target := e.kubelet.TargetPath(pod.UID, seedVolume)
	pemFile, err := os.ReadFile(filepath.Join(target, "ingress-cert"))
	if err != nil {
		return err
	}
	spcps, err := e.spcps(pod, "ingress-tls")
	if err != nil {
		return err
	}
	s, err := e.syncedSecret("wi", "ingress-tls-csi", spcps)
	if err != nil {
		return err
	}
	if err := check(s.Type == corev1.SecretTypeTLS, "Secret ingress-tls-csi has type %s", s.Type); err != nil {
		return err
	}
	keyBlock, _ := pem.Decode(s.Data["tls.key"])
	if err := check(keyBlock != nil && strings.HasSuffix(keyBlock.Type, "PRIVATE KEY"), "tls.key is not a PEM private key"); err != nil {
		return err
	}
	if _, err := x509.ParsePKCS8PrivateKey(keyBlock.Bytes); err != nil {
		if _, err2 := x509.ParsePKCS1PrivateKey(keyBlock.Bytes); err2 != nil {
			return check(false, "tls.key does not parse: %v", err)
		}
	}
	certBlock, _ := pem.Decode(s.Data["tls.crt"])
	if err := check(certBlock != nil && certBlock.Type == "CERTIFICATE", "tls.crt is not a PEM certificate"); err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return check(false, "tls.crt does not parse: %v", err)
	}
	if err := check(bytes.Contains(pemFile, s.Data["tls.crt"]) && !bytes.Contains(s.Data["tls.crt"], []byte("PRIVATE KEY")), "tls.crt is not the certificate part of the mounted file"); err != nil {
		return err
	}
	fmt.Printf("   Secret wi/ingress-tls-csi type %s: tls.key %s, tls.crt subject %q\n", s.Type, keyBlock.Type, cert.Subject.String())
	return e.deletePod(pod, seedVolume)
}

// workloadIdentity: kubelet requests the pod's service-account token for the
// CSIDriver's tokenRequests audiences; the provider exchanges it at the
// stand-in Entra ID, which accepts only a token of this API server for a
// federated subject.
func (e *env) workloadIdentity() error {
	if _, err := e.createSPC("wi", "deploy/examples/workload-identity-secretproviderclass.yaml", wiReplace(wiClientID)); err != nil {
		return err
	}
	pod, err := e.createPod(e.inlinePod("wi", "wi-app", workloadSA, "app-secrets-wi", nil))
	if err != nil {
		return err
	}
	if _, err := e.waitStarted(pod); err != nil {
		return err
	}
	target := e.kubelet.TargetPath(pod.UID, seedVolume)
	names, err := files(target)
	if err != nil {
		return err
	}
	if err := check(slices.Equal(names, []string{"db-password", "signing-key"}), "files: %v", names); err != nil {
		return err
	}
	db, _ := os.ReadFile(filepath.Join(target, "db-password"))
	key, _ := os.ReadFile(filepath.Join(target, "signing-key"))
	if err := check(string(db) == dbPassword, "db-password holds %d bytes, not the vault's value", len(db)); err != nil {
		return err
	}
	if err := check(strings.HasPrefix(string(key), "-----BEGIN PUBLIC KEY-----"), "signing-key is not a PEM public key"); err != nil {
		return err
	}
	spcps, err := e.spcps(pod, "app-secrets-wi")
	if err != nil {
		return err
	}
	fmt.Printf("   workload identity: files %v, SecretProviderClassPodStatus objects %v\n", names, objectVersions(spcps))
	return e.deletePod(pod, seedVolume)
}

// podIdentity: NMI hands out the token of the identity bound to the pod.
func (e *env) podIdentity() error {
	if _, err := e.createSPC("podid", "deploy/examples/pod-identity-secretproviderclass.yaml", map[string]string{"<tenant id>": tenantID}); err != nil {
		return err
	}
	pod, err := e.createPod(e.inlinePod("podid", "podid-app", "default", "app-secrets-podid", map[string]string{"aadpodidbinding": "azure-pod-identity-binding-selector"}))
	if err != nil {
		return err
	}
	if _, err := e.waitStarted(pod); err != nil {
		return err
	}
	target := e.kubelet.TargetPath(pod.UID, seedVolume)
	db, err := os.ReadFile(filepath.Join(target, "db-password"))
	if err != nil {
		return err
	}
	if err := check(string(db) == dbPassword, "db-password holds %d bytes, not the vault's value", len(db)); err != nil {
		return err
	}
	fmt.Printf("   pod identity: db-password mounted for podid/podid-app through NMI\n")
	return e.deletePod(pod, seedVolume)
}

// failures: what users see when a mount fails (the FailedMount event kubelet
// records, i.e. `kubectl describe pod`), and recovery once the
// SecretProviderClass is fixed.
func (e *env) failures() error {
	cases := []struct {
		name, pod, sa, code, object, client string
		objects                             string
		// fixable: the SecretProviderClass is at fault (a pod's service
		// account cannot be changed; that case ends with the failure).
		fixable bool
	}{
		{name: "missing secret", pod: "missing-app", sa: workloadSA, code: "NotFound", object: "does-not-exist", client: wiClientID,
			objects: "array:\n  - |\n    objectName: does-not-exist\n    objectType: secret\n", fixable: true},
		{name: "denied identity", pod: "denied-app", sa: workloadSA, code: "PermissionDenied", object: "db-password", client: deniedClientID,
			objects: "array:\n  - |\n    objectName: db-password\n    objectType: secret\n", fixable: true},
		// The stand-in Entra ID checks the service-account token's subject
		// against the federated credentials: proof the exchanged token is
		// the API server's token for this pod.
		{name: "service account without a federated credential", pod: "unfederated-app", sa: "default", code: "Unauthenticated", object: "AADSTS70021", client: wiClientID,
			objects: "array:\n  - |\n    objectName: db-password\n    objectType: secret\n"},
	}
	for _, c := range cases {
		spcName := "spc-" + c.pod
		spc := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "secrets-store.csi.x-k8s.io/v1",
			"kind":       "SecretProviderClass",
			"metadata":   map[string]any{"name": spcName, "namespace": "failures"},
			"spec": map[string]any{
				"provider": "rust-azure",
				"parameters": map[string]any{
					"clientID": c.client, "keyvaultName": "myk8skv", "tenantID": tenantID, "objects": c.objects,
				},
			},
		}}
		if _, err := e.dyn.Resource(spcGVR).Namespace("failures").Create(e.ctx, spc, metav1.CreateOptions{}); err != nil {
			return err
		}
		pod, err := e.createPod(e.inlinePod("failures", c.pod, c.sa, spcName, nil))
		if err != nil {
			return err
		}
		wantPrefix := fmt.Sprintf("MountVolume.SetUp failed for volume %q : rpc error: code = %s desc = failed to mount secrets store objects for pod failures/%s, err: rpc error: code = %s desc = ", seedVolume, c.code, c.pod, c.code)
		var event corev1.Event
		if err := e.waitFor(c.name+": a FailedMount event", func() (bool, string, error) {
			for _, ev := range e.events(pod) {
				if ev.Reason == "FailedMount" {
					event = ev
					return true, "", nil
				}
			}
			return false, "no FailedMount event yet", nil
		}); err != nil {
			return err
		}
		if err := check(strings.HasPrefix(event.Message, wantPrefix) && strings.Contains(event.Message, c.object), "%s: FailedMount message %q does not start with %q and name %s", c.name, event.Message, wantPrefix, c.object); err != nil {
			return err
		}
		fmt.Printf("   %s, as `kubectl describe pod failures/%s` shows it:\n     Warning  FailedMount  kubelet  %s\n", c.name, c.pod, event.Message)
		// Let kubelet's first retry (500ms backoff) happen before looking.
		time.Sleep(1500 * time.Millisecond)
		target := e.kubelet.TargetPath(pod.UID, seedVolume)
		if err := check(!mounted(target), "%s: %s stays mounted after the failed publish", c.name, target); err != nil {
			return err
		}
		if names, _ := files(target); len(names) != 0 {
			return check(false, "%s: files %v left in %s after the failed publish", c.name, names, target)
		}
		// Not a check: driver v1.6 answers kubelet's retry within
		// --rotation-poll-interval of the failed attempt (the target
		// directory's mtime) with success and no mount, so kubelet would
		// start the container on an empty directory until a republish.
		if ok, _ := e.kubelet.Started(pod.UID); ok && !mounted(target) {
			fmt.Printf("   note: driver %s answered kubelet's retry with success but mounted nothing (retry within --rotation-poll-interval of the failed attempt)\n", e.driver)
		}

		if !c.fixable {
			if err := e.deletePod(pod, seedVolume); err != nil {
				return err
			}
			continue
		}
		// Fix the SecretProviderClass: the next publish succeeds with only the wanted file.
		fixed, err := e.dyn.Resource(spcGVR).Namespace("failures").Get(e.ctx, spcName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		_ = unstructured.SetNestedField(fixed.Object, wiClientID, "spec", "parameters", "clientID")
		_ = unstructured.SetNestedField(fixed.Object, "array:\n  - |\n    objectName: db-password\n    objectType: secret\n", "spec", "parameters", "objects")
		if _, err := e.dyn.Resource(spcGVR).Namespace("failures").Update(e.ctx, fixed, metav1.UpdateOptions{}); err != nil {
			return err
		}
		if _, err := e.waitStarted(pod); err != nil {
			return err
		}
		// v1.6 answers a publish within --rotation-poll-interval of the
		// target's last change with success and no mount; kubelet's
		// republish then mounts. Either way the volume must end up with
		// exactly the fixed SPC's file.
		var names []string
		if err := e.waitFor(c.name+": the fixed volume's files", func() (bool, string, error) {
			names, _ = files(target)
			return mounted(target) && slices.Equal(names, []string{"db-password"}), fmt.Sprintf("mounted=%t files=%v", mounted(target), names), nil
		}); err != nil {
			return err
		}
		fmt.Printf("   %s fixed in SecretProviderClass %s: the next publish succeeded, the volume holds %v\n", c.name, spcName, names)
		if err := e.deletePod(pod, seedVolume); err != nil {
			return err
		}
	}
	return nil
}

func wiReplace(client string) map[string]string {
	return map[string]string{"<client id of the identity>": client, "<tenant id>": tenantID}
}
