// Command cluster-scenarios prepares the test cluster (CRDs, namespaces,
// ServiceAccounts, the Node, the CSIDriver), runs the kubelet stand-in against
// the secrets-store-csi-driver's socket, and runs the scenarios of
// tests/cluster through the API server, printing one PASS/FAIL line each.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	csi "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"rust-azure-provider/cluster/kubelet/standin"
)

// Shared with examples/cluster_standin.rs (the Azure stand-in).
const (
	seedValue      = "hVFkk965BuUv"
	seedVersion    = "f4a1c3e2b5d64e7f8a9b0c1d2e3f4a5b"
	rotatedValue   = "Zp3mQ8wLx2Rt"
	rotatedVersion = "9a8b7c6d5e4f40312a1b2c3d4e5f6a7b"
	dbPassword     = "s3cr3t-db-password"
	wiClientID     = "7a1b2c3d-0000-4000-8000-00000000a11e"
	deniedClientID = "7a1b2c3d-0000-4000-8000-0000000de41e"
	tenantID       = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	workloadSA     = "workload-sa"
)

var (
	spcGVR   = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasses"}
	spcpsGVR = schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: "secretproviderclasspodstatuses"}
	crdGVR   = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

type env struct {
	ctx      context.Context
	kube     kubernetes.Interface
	dyn      dynamic.Interface
	kubelet  *standin.Kubelet
	repo     string
	driver   string
	node     string
	admin    string
	adminHst string
	timeout  time.Duration
	// republish: the CSIDriver has requiresRepublish (v1.6); otherwise
	// rotation is the driver's own reconciler (v1.5).
	republish bool
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "free-ports" {
		freePorts(os.Args[2])
		return
	}
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the test API server")
	socket := flag.String("driver-socket", "", "the driver's CSI socket")
	driverVersion := flag.String("driver-version", "", "driver version (for the output)")
	node := flag.String("node", "cluster-node", "node name (the driver's --nodeid)")
	rootDir := flag.String("root-dir", "", "kubelet root directory (pods/<uid>/volumes/... live here)")
	repo := flag.String("repo", ".", "repository root (deploy/examples)")
	crdDir := flag.String("crd-dir", "", "directory with the driver's CRD YAML files")
	admin := flag.String("admin-addr", "", "the Azure stand-in's control address")
	adminHost := flag.String("admin-host", "", "Host header of the Azure stand-in's control endpoint")
	republish := flag.Duration("republish-interval", 2*time.Second, "kubelet resync of volumes whose CSIDriver requires republish")
	requiresRepublish := flag.Bool("requires-republish", true, "CSIDriver spec.requiresRepublish")
	timeout := flag.Duration("timeout", 90*time.Second, "how long each wait may take")
	phase := flag.String("phase", "all", "setup (CRDs and cluster objects, before the driver starts), scenarios, or all")
	scenarios := flag.String("scenarios", "seed,rotation,tls,workload-identity,pod-identity,failures", "scenarios to run, in order")
	flag.Parse()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fatal("kubeconfig: %v", err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	e := &env{
		ctx:      ctx,
		kube:     kubernetes.NewForConfigOrDie(cfg),
		dyn:      dynamic.NewForConfigOrDie(cfg),
		repo:     *repo,
		driver:   *driverVersion,
		node:     *node,
		admin:    *admin,
		adminHst: *adminHost,
		timeout:  *timeout,

		republish: *requiresRepublish,
	}
	if *phase == "setup" || *phase == "all" {
		if err := e.setup(*crdDir, *requiresRepublish); err != nil {
			fatal("cluster setup: %v", err)
		}
		if *phase == "setup" {
			return
		}
	} else if *phase != "scenarios" {
		fatal("--phase %q: want setup, scenarios or all", *phase)
	}
	conn, err := grpc.NewClient("unix://"+*socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fatal("driver socket %s: %v", *socket, err)
	}
	defer conn.Close()
	e.kubelet = &standin.Kubelet{
		Client:         e.kube,
		CSI:            csi.NewNodeClient(conn),
		NodeName:       *node,
		RootDir:        *rootDir,
		DriverName:     "secrets-store.csi.k8s.io",
		RepublishEvery: *republish,
		Logf:           func(f string, a ...any) { fmt.Printf(f+"\n", a...) },
	}
	go e.kubelet.Run(ctx)

	all := map[string]func() error{
		"seed":              e.seed,
		"rotation":          e.rotation,
		"tls":               e.tls,
		"workload-identity": e.workloadIdentity,
		"pod-identity":      e.podIdentity,
		"failures":          e.failures,
	}
	var failed []string
	for _, name := range strings.Split(*scenarios, ",") {
		run, ok := all[name]
		if !ok {
			fatal("unknown scenario %q", name)
		}
		fmt.Printf("== scenario %s (driver %s)\n", name, e.driver)
		start := time.Now()
		if err := run(); err != nil {
			fmt.Printf("FAIL %s (driver %s): %v\n", name, e.driver, err)
			failed = append(failed, name)
			continue
		}
		fmt.Printf("PASS %s (driver %s) in %.1fs\n", name, e.driver, time.Since(start).Seconds())
	}
	if len(failed) > 0 {
		fmt.Printf("driver %s: %d scenario(s) failed: %s\n", e.driver, len(failed), strings.Join(failed, ", "))
		os.Exit(1)
	}
}

// freePorts prints n loopback TCP ports that were free a moment ago (for
// run.sh: etcd and kube-apiserver need their ports on the command line).
func freePorts(n string) {
	var count int
	if _, err := fmt.Sscan(n, &count); err != nil || count < 1 {
		fatal("free-ports: want a positive count, got %q", n)
	}
	var ls []net.Listener
	for range count {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fatal("free-ports: %v", err)
		}
		ls = append(ls, l)
	}
	for _, l := range ls {
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
		l.Close()
	}
}

func fatal(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "cluster-scenarios: "+f+"\n", a...)
	os.Exit(1)
}

// setup does what the control plane and the driver's Helm chart would have
// done: CRDs, namespaces and their default ServiceAccounts (there is no
// controller-manager), the Node, the CSIDriver object.
func (e *env) setup(crdDir string, requiresRepublish bool) error {
	files, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRD YAML in %q", crdDir)
	}
	for _, f := range files {
		obj, err := readObject(f, nil)
		if err != nil {
			return err
		}
		if _, err := e.dyn.Resource(crdGVR).Create(e.ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating CRD from %s: %w", f, err)
		}
		name := obj.GetName()
		if err := e.waitFor("CRD "+name+" established", func() (bool, string, error) {
			c, err := e.dyn.Resource(crdGVR).Get(e.ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error(), nil
			}
			conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, "", nil
				}
			}
			return false, "not established yet", nil
		}); err != nil {
			return err
		}
		// Discovery of a new CRD lags its Established condition.
		if err := e.waitFor("CRD "+name+" served", func() (bool, string, error) {
			_, err := e.dyn.Resource(schema.GroupVersionResource{Group: "secrets-store.csi.x-k8s.io", Version: "v1", Resource: strings.SplitN(name, ".", 2)[0]}).List(e.ctx, metav1.ListOptions{Limit: 1})
			if err != nil {
				return false, err.Error(), nil
			}
			return true, "", nil
		}); err != nil {
			return err
		}
		fmt.Printf("setup: CRD %s installed from %s\n", name, f)
	}
	for _, ns := range []string{"default", "wi", "podid", "failures"} {
		if _, err := e.kube.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
		for _, sa := range []string{"default", workloadSA} {
			if _, err := e.kube.CoreV1().ServiceAccounts(ns).Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("serviceaccount %s/%s: %w", ns, sa, err)
			}
		}
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: e.node, Labels: map[string]string{"kubernetes.io/hostname": e.node, "kubernetes.io/os": "linux"}}}
	if _, err := e.kube.CoreV1().Nodes().Create(e.ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("node %s: %w", e.node, err)
	}
	raw, err := os.ReadFile(filepath.Join(e.repo, "deploy/examples/csidriver-token-requests.yaml"))
	if err != nil {
		return err
	}
	var drv storagev1.CSIDriver
	if err := yaml.UnmarshalStrict(raw, &drv); err != nil {
		return fmt.Errorf("csidriver-token-requests.yaml: %w", err)
	}
	drv.Spec.RequiresRepublish = &requiresRepublish
	if _, err := e.kube.StorageV1().CSIDrivers().Create(e.ctx, &drv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("CSIDriver: %w", err)
	}
	fmt.Printf("setup: CSIDriver %s (podInfoOnMount, requiresRepublish=%t, tokenRequests %d) from deploy/examples/csidriver-token-requests.yaml\n", drv.Name, requiresRepublish, len(drv.Spec.TokenRequests))
	return nil
}

// readObject reads a one-document YAML file, replacing placeholders first.
func readObject(path string, replace map[string]string) (*unstructured.Unstructured, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := string(raw)
	for k, v := range replace {
		text = strings.ReplaceAll(text, k, v)
	}
	var m map[string]any
	if err := yaml.Unmarshal([]byte(text), &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// waitFor polls cond every 250ms until it holds, fails, or the timeout passes
// (the error names what was awaited and the last state seen).
func (e *env) waitFor(what string, cond func() (bool, string, error)) error {
	deadline := time.Now().Add(e.timeout)
	last := ""
	for {
		ok, state, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		last = state
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s (last: %s)", e.timeout, what, last)
		}
		select {
		case <-e.ctx.Done():
			return e.ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (e *env) createSPC(namespace, file string, replace map[string]string) (*unstructured.Unstructured, error) {
	obj, err := readObject(filepath.Join(e.repo, file), replace)
	if err != nil {
		return nil, err
	}
	created, err := e.dyn.Resource(spcGVR).Namespace(namespace).Create(e.ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating SecretProviderClass from %s: %w", file, err)
	}
	fmt.Printf("   created SecretProviderClass %s/%s from %s\n", namespace, created.GetName(), file)
	return created, nil
}

// inlinePod is a pod with one secrets-store inline volume, as in the seed pod.
func (e *env) inlinePod(namespace, name, sa, spc string, labels map[string]string) *corev1.Pod {
	ro := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: corev1.PodSpec{
			NodeName:           e.node,
			ServiceAccountName: sa,
			Containers: []corev1.Container{{
				Name: "app", Image: "busybox",
				VolumeMounts: []corev1.VolumeMount{{Name: "secrets-store-inline", MountPath: "/mnt/secrets-store", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{{Name: "secrets-store-inline", VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: "secrets-store.csi.k8s.io", ReadOnly: &ro, VolumeAttributes: map[string]string{"secretProviderClass": spc},
			}}}},
		},
	}
}

func (e *env) createPod(pod *corev1.Pod) (*corev1.Pod, error) {
	created, err := e.kube.CoreV1().Pods(pod.Namespace).Create(e.ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	fmt.Printf("   created Pod %s/%s (uid %s) on node %s\n", created.Namespace, created.Name, created.UID, created.Spec.NodeName)
	return created, nil
}

// waitStarted waits until the kubelet stand-in has published every volume of
// the pod and resolved its containers' environment; on timeout the error
// carries the pod's events (what `kubectl describe pod` shows).
func (e *env) waitStarted(pod *corev1.Pod) (map[string]map[string]string, error) {
	var envs map[string]map[string]string
	err := e.waitFor(fmt.Sprintf("pod %s/%s to start", pod.Namespace, pod.Name), func() (bool, string, error) {
		ok, env := e.kubelet.Started(pod.UID)
		if ok {
			envs = env
			return true, "", nil
		}
		return false, e.lastEvent(pod), nil
	})
	return envs, err
}

func (e *env) events(pod *corev1.Pod) []corev1.Event {
	list, err := e.kube.CoreV1().Events(pod.Namespace).List(e.ctx, metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(pod.UID)})
	if err != nil {
		return nil
	}
	return list.Items
}

func (e *env) lastEvent(pod *corev1.Pod) string {
	evs := e.events(pod)
	if len(evs) == 0 {
		return "no events"
	}
	ev := evs[len(evs)-1]
	return ev.Reason + ": " + ev.Message
}

// deletePod deletes gracefully (the kubelet stand-in unpublishes and then
// finalizes the deletion) and waits until the pod and its mount are gone.
func (e *env) deletePod(pod *corev1.Pod, volumes ...string) error {
	if err := e.kube.CoreV1().Pods(pod.Namespace).Delete(e.ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("deleting pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	if err := e.waitFor(fmt.Sprintf("pod %s/%s to be deleted", pod.Namespace, pod.Name), func() (bool, string, error) {
		_, err := e.kube.CoreV1().Pods(pod.Namespace).Get(e.ctx, pod.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		return false, "still present", nil
	}); err != nil {
		return err
	}
	if err := e.collectGarbage(pod); err != nil {
		return err
	}
	for _, v := range volumes {
		target := e.kubelet.TargetPath(pod.UID, v)
		if mounted(target) {
			return fmt.Errorf("%s is still mounted after the pod was deleted", target)
		}
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			return fmt.Errorf("%s still exists after the pod was deleted", target)
		}
	}
	fmt.Printf("   deleted Pod %s/%s: NodeUnpublishVolume unmounted its volume(s), nothing left under the pod directory\n", pod.Namespace, pod.Name)
	return nil
}

// collectGarbage does what kube-controller-manager's garbage collector would
// after the pod is gone: it deletes the SecretProviderClassPodStatus objects
// the pod owns, then the Secrets whose owners are all gone. Without it the
// driver's owner-reference patcher fails on the orphaned status objects
// ("failed to fetch pod during patching") and patches no Secret any more.
func (e *env) collectGarbage(pod *corev1.Pod) error {
	list, err := e.dyn.Resource(spcpsGVR).Namespace(pod.Namespace).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	gone := map[string]bool{}
	for _, item := range list.Items {
		for _, o := range item.GetOwnerReferences() {
			if o.UID == pod.UID {
				if err := e.dyn.Resource(spcpsGVR).Namespace(pod.Namespace).Delete(e.ctx, item.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					return err
				}
				gone[string(item.GetUID())] = true
			}
		}
	}
	secrets, err := e.kube.CoreV1().Secrets(pod.Namespace).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, s := range secrets.Items {
		if len(s.OwnerReferences) == 0 {
			continue
		}
		orphan := true
		for _, o := range s.OwnerReferences {
			if !gone[string(o.UID)] {
				orphan = false
			}
		}
		if orphan {
			if err := e.kube.CoreV1().Secrets(pod.Namespace).Delete(e.ctx, s.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
	}
	return nil
}

// mounted reports whether path is a mount point (tmpfs from the driver).
func mounted(path string) bool {
	return mountFSType(path) != ""
}

func mountFSType(path string) string {
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 10 || fields[4] != path {
			continue
		}
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) {
				return fields[i+1]
			}
		}
	}
	return ""
}

// spcps returns the driver's SecretProviderClassPodStatus for the pod.
func (e *env) spcps(pod *corev1.Pod, spc string) (*unstructured.Unstructured, error) {
	return e.dyn.Resource(spcpsGVR).Namespace(pod.Namespace).Get(e.ctx, pod.Name+"-"+pod.Namespace+"-"+spc, metav1.GetOptions{})
}

func objectVersions(spcps *unstructured.Unstructured) map[string]string {
	out := map[string]string{}
	objs, _, _ := unstructured.NestedSlice(spcps.Object, "status", "objects")
	for _, o := range objs {
		m, _ := o.(map[string]any)
		id, _ := m["id"].(string)
		v, _ := m["version"].(string)
		out[id] = v
	}
	return out
}

// files lists the visible files of a mounted volume (the atomic writer's
// ..data links and timestamped directories are hidden, as in the pod).
func files(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, en := range entries {
		if !strings.HasPrefix(en.Name(), "..") {
			out = append(out, en.Name())
		}
	}
	return out, nil
}

var errScenario = errors.New("scenario check failed")

func check(ok bool, f string, a ...any) error {
	if ok {
		return nil
	}
	return fmt.Errorf("%w: %s", errScenario, fmt.Sprintf(f, a...))
}
