// Package standin is a kubelet stand-in for CSI inline volumes: it watches the
// pods bound to its node and does for their CSI volumes what kubelet's CSI
// volume plugin does (NodePublishVolume with kubelet's volume context and
// service-account tokens, republish when the CSIDriver asks for it,
// NodeUnpublishVolume when the pod is deleted), reports mount failures as
// kubelet's FailedMount events, and "starts" the containers by resolving their
// environment from Secrets as kubelet does.
package standin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Volume-context keys kubelet adds when the CSIDriver has podInfoOnMount.
const (
	ctxPodName        = "csi.storage.k8s.io/pod.name"
	ctxPodNamespace   = "csi.storage.k8s.io/pod.namespace"
	ctxPodUID         = "csi.storage.k8s.io/pod.uid"
	ctxServiceAccount = "csi.storage.k8s.io/serviceAccount.name"
	ctxEphemeral      = "csi.storage.k8s.io/ephemeral"
	ctxTokens         = "csi.storage.k8s.io/serviceAccount.tokens"
)

// Kubelet is the stand-in. Fields are set before Run.
type Kubelet struct {
	Client     kubernetes.Interface
	CSI        csi.NodeClient
	NodeName   string
	RootDir    string
	DriverName string
	// RepublishEvery is kubelet's volume resync for CSIDrivers with
	// requiresRepublish (kubelet's default sync period is a minute).
	RepublishEvery time.Duration
	Logf           func(format string, args ...any)

	mu   sync.Mutex
	pods map[types.UID]*podState
}

type podState struct {
	pod       *corev1.Pod
	published map[string]time.Time // volume name -> last successful publish
	nextTry   time.Time
	backoff   time.Duration
	started   bool
	env       map[string]map[string]string // container -> resolved env
}

// TargetPath is where kubelet asks the driver to publish volume vol of pod uid.
func (k *Kubelet) TargetPath(uid types.UID, vol string) string {
	return filepath.Join(k.RootDir, "pods", string(uid), "volumes", "kubernetes.io~csi", vol, "mount")
}

// Started reports whether the pod's volumes are published and its containers'
// environment resolved, and the environment.
func (k *Kubelet) Started(uid types.UID) (bool, map[string]map[string]string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	st, ok := k.pods[uid]
	if !ok || !st.started {
		return false, nil
	}
	return true, st.env
}

// LastPublish is the time of the last successful NodePublishVolume of a volume.
func (k *Kubelet) LastPublish(uid types.UID, vol string) time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	if st, ok := k.pods[uid]; ok {
		return st.published[vol]
	}
	return time.Time{}
}

// Run syncs pods until ctx is done.
func (k *Kubelet) Run(ctx context.Context) {
	k.mu.Lock()
	if k.pods == nil {
		k.pods = map[types.UID]*podState{}
	}
	k.mu.Unlock()
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		k.sync(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (k *Kubelet) sync(ctx context.Context) {
	list, err := k.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + k.NodeName})
	if err != nil {
		if ctx.Err() == nil {
			k.Logf("kubelet: listing pods: %v", err)
		}
		return
	}
	var driver *storagev1.CSIDriver
	if d, err := k.Client.StorageV1().CSIDrivers().Get(ctx, k.DriverName, metav1.GetOptions{}); err == nil {
		driver = d
	} else if !apierrors.IsNotFound(err) {
		k.Logf("kubelet: reading CSIDriver %s: %v", k.DriverName, err)
		return
	}
	seen := map[types.UID]bool{}
	for i := range list.Items {
		pod := list.Items[i].DeepCopy()
		seen[pod.UID] = true
		k.mu.Lock()
		st, ok := k.pods[pod.UID]
		if !ok {
			st = &podState{published: map[string]time.Time{}, backoff: 500 * time.Millisecond}
			k.pods[pod.UID] = st
		}
		st.pod = pod
		k.mu.Unlock()
		if pod.DeletionTimestamp != nil {
			if k.teardown(ctx, pod) {
				grace := int64(0)
				uid := pod.UID
				err := k.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace, Preconditions: &metav1.Preconditions{UID: &uid}})
				if err != nil && !apierrors.IsNotFound(err) {
					k.Logf("kubelet: deleting pod %s/%s: %v", pod.Namespace, pod.Name, err)
				}
			}
			continue
		}
		k.syncPod(ctx, pod, st, driver)
	}
	// Pods removed without a graceful deletion still get their volumes torn down.
	k.mu.Lock()
	var gone []*corev1.Pod
	for uid, st := range k.pods {
		if !seen[uid] {
			gone = append(gone, st.pod)
		}
	}
	k.mu.Unlock()
	for _, pod := range gone {
		if k.teardown(ctx, pod) {
			k.mu.Lock()
			delete(k.pods, pod.UID)
			k.mu.Unlock()
		}
	}
}

func (k *Kubelet) csiVolumes(pod *corev1.Pod) []corev1.Volume {
	var vols []corev1.Volume
	for _, v := range pod.Spec.Volumes {
		if v.CSI != nil && v.CSI.Driver == k.DriverName {
			vols = append(vols, v)
		}
	}
	return vols
}

func (k *Kubelet) syncPod(ctx context.Context, pod *corev1.Pod, st *podState, driver *storagev1.CSIDriver) {
	now := time.Now()
	k.mu.Lock()
	if now.Before(st.nextTry) {
		k.mu.Unlock()
		return
	}
	k.mu.Unlock()
	republish := driver != nil && driver.Spec.RequiresRepublish != nil && *driver.Spec.RequiresRepublish
	failed := false
	for _, vol := range k.csiVolumes(pod) {
		k.mu.Lock()
		last, done := st.published[vol.Name]
		k.mu.Unlock()
		if done && !(republish && now.Sub(last) >= k.RepublishEvery) {
			continue
		}
		if err := k.publish(ctx, pod, vol, driver); err != nil {
			failed = true
			msg := fmt.Sprintf("MountVolume.SetUp failed for volume %q : %v", vol.Name, err)
			k.Logf("kubelet: pod %s/%s: %s", pod.Namespace, pod.Name, msg)
			k.event(ctx, pod, "FailedMount", msg)
			continue
		}
		k.mu.Lock()
		st.published[vol.Name] = time.Now()
		k.mu.Unlock()
		if !done {
			k.Logf("kubelet: pod %s/%s: volume %s published at %s", pod.Namespace, pod.Name, vol.Name, k.TargetPath(pod.UID, vol.Name))
		}
	}
	k.mu.Lock()
	started := st.started
	k.mu.Unlock()
	if !failed && !started {
		env, err := k.resolveAll(ctx, pod)
		if err != nil {
			failed = true
			k.Logf("kubelet: pod %s/%s: %v", pod.Namespace, pod.Name, err)
			k.event(ctx, pod, "Failed", "Error: "+err.Error())
		} else {
			k.mu.Lock()
			st.started = true
			st.env = env
			k.mu.Unlock()
			k.markRunning(ctx, pod)
		}
	}
	k.mu.Lock()
	if failed {
		// kubelet retries a failed mount with exponential backoff.
		st.nextTry = time.Now().Add(st.backoff)
		st.backoff = min(st.backoff*2, 4*time.Second)
	} else {
		st.backoff = 500 * time.Millisecond
	}
	k.mu.Unlock()
}

func (k *Kubelet) publish(ctx context.Context, pod *corev1.Pod, vol corev1.Volume, driver *storagev1.CSIDriver) error {
	target := k.TargetPath(pod.UID, vol.Name)
	// kubelet creates the parent; the driver creates the target itself.
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return err
	}
	vc := map[string]string{}
	for key, v := range vol.CSI.VolumeAttributes {
		vc[key] = v
	}
	if driver != nil && driver.Spec.PodInfoOnMount != nil && *driver.Spec.PodInfoOnMount {
		vc[ctxPodName] = pod.Name
		vc[ctxPodNamespace] = pod.Namespace
		vc[ctxPodUID] = string(pod.UID)
		vc[ctxServiceAccount] = pod.Spec.ServiceAccountName
		vc[ctxEphemeral] = "true"
	}
	if driver != nil && len(driver.Spec.TokenRequests) > 0 {
		tokens := map[string]authenticationv1.TokenRequestStatus{}
		for _, tr := range driver.Spec.TokenRequests {
			req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
				Audiences:         []string{tr.Audience},
				ExpirationSeconds: tr.ExpirationSeconds,
				BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
			}}
			resp, err := k.Client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName, req, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("failed to get service account token for audience %q: %w", tr.Audience, err)
			}
			tokens[tr.Audience] = resp.Status
		}
		b, err := json.Marshal(tokens)
		if err != nil {
			return err
		}
		vc[ctxTokens] = string(b)
	}
	var secrets map[string]string
	if ref := vol.CSI.NodePublishSecretRef; ref != nil {
		s, err := k.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("fetching NodePublishSecretRef %s/%s failed: %w", pod.Namespace, ref.Name, err)
		}
		secrets = map[string]string{}
		for key, v := range s.Data {
			secrets[key] = string(v)
		}
	}
	readOnly := vol.CSI.ReadOnly != nil && *vol.CSI.ReadOnly
	req := &csi.NodePublishVolumeRequest{
		VolumeId:   volumeHandle(pod.UID, vol.Name),
		TargetPath: target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
		},
		Readonly:      readOnly,
		Secrets:       secrets,
		VolumeContext: vc,
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_, err := k.CSI.NodePublishVolume(cctx, req)
	return err
}

// volumeHandle is kubelet's handle for an ephemeral inline volume.
func volumeHandle(uid types.UID, vol string) string {
	sum := sha256.Sum256([]byte(string(uid) + vol))
	return "csi-" + hex.EncodeToString(sum[:])
}

// teardown unpublishes every CSI volume of the pod and removes its directory;
// false when an unpublish failed (kubelet retries).
func (k *Kubelet) teardown(ctx context.Context, pod *corev1.Pod) bool {
	ok := true
	for _, vol := range k.csiVolumes(pod) {
		target := k.TargetPath(pod.UID, vol.Name)
		if _, err := os.Stat(target); os.IsNotExist(err) {
			continue
		}
		_, err := k.CSI.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: volumeHandle(pod.UID, vol.Name), TargetPath: target})
		if err != nil {
			k.Logf("kubelet: pod %s/%s: UnmountVolume.TearDown failed for volume %q : %v", pod.Namespace, pod.Name, vol.Name, err)
			ok = false
			continue
		}
		k.Logf("kubelet: pod %s/%s: volume %s unpublished", pod.Namespace, pod.Name, vol.Name)
	}
	if ok {
		if err := os.RemoveAll(filepath.Join(k.RootDir, "pods", string(pod.UID))); err != nil {
			k.Logf("kubelet: removing the pod directory: %v", err)
			return false
		}
	}
	return ok
}

func (k *Kubelet) resolveAll(ctx context.Context, pod *corev1.Pod) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, c := range pod.Spec.Containers {
		env, err := ResolveEnv(ctx, k.Client, pod.Namespace, c)
		if err != nil {
			return nil, err
		}
		out[c.Name] = env
	}
	return out, nil
}

// ResolveEnv resolves a container's environment as kubelet does when it
// starts the container: literal values, Secret and ConfigMap keys (missing
// optional references are skipped), and envFrom.
func ResolveEnv(ctx context.Context, client kubernetes.Interface, namespace string, c corev1.Container) (map[string]string, error) {
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.SecretRef != nil:
			s, err := client.CoreV1().Secrets(namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && from.SecretRef.Optional != nil && *from.SecretRef.Optional {
					continue
				}
				return nil, kubeletRefError("secret", from.SecretRef.Name, err)
			}
			for key, v := range s.Data {
				env[from.Prefix+key] = string(v)
			}
		case from.ConfigMapRef != nil:
			cm, err := client.CoreV1().ConfigMaps(namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && from.ConfigMapRef.Optional != nil && *from.ConfigMapRef.Optional {
					continue
				}
				return nil, kubeletRefError("configmap", from.ConfigMapRef.Name, err)
			}
			for key, v := range cm.Data {
				env[from.Prefix+key] = v
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			optional := ref.Optional != nil && *ref.Optional
			s, err := client.CoreV1().Secrets(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, kubeletRefError("secret", ref.Name, err)
			}
			v, ok := s.Data[ref.Key]
			if !ok {
				if optional {
					continue
				}
				return nil, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, namespace, ref.Name)
			}
			env[e.Name] = string(v)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			optional := ref.Optional != nil && *ref.Optional
			cm, err := client.CoreV1().ConfigMaps(namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				if apierrors.IsNotFound(err) && optional {
					continue
				}
				return nil, kubeletRefError("configmap", ref.Name, err)
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				if optional {
					continue
				}
				return nil, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, namespace, ref.Name)
			}
			env[e.Name] = v
		}
	}
	return env, nil
}

func kubeletRefError(kind, name string, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %q not found", kind, name)
	}
	return err
}

func (k *Kubelet) markRunning(ctx context.Context, pod *corev1.Pod) {
	p, err := k.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		return
	}
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.StartTime = &now
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
	var statuses []corev1.ContainerStatus
	for _, c := range p.Spec.Containers {
		statuses = append(statuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}})
	}
	p.Status.ContainerStatuses = statuses
	if _, err := k.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		k.Logf("kubelet: updating the status of %s/%s: %v", pod.Namespace, pod.Name, err)
	}
}

func (k *Kubelet) event(ctx context.Context, pod *corev1.Pod, reason, msg string) {
	suffix := make([]byte, 8)
	_, _ = rand.Read(suffix)
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: pod.Name + "." + hex.EncodeToString(suffix), Namespace: pod.Namespace},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, APIVersion: "v1"},
		Reason:         reason,
		Message:        msg,
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "kubelet", Host: k.NodeName},
		FirstTimestamp: now,
		LastTimestamp:  now,
		Count:          1,
	}
	if _, err := k.Client.CoreV1().Events(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		k.Logf("kubelet: recording event: %v", err)
	}
}

// SortedKeys is a helper for stable output.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
