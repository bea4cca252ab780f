// Package kubetest runs a real Kubernetes control plane for a test: etcd,
// kube-apiserver (authorizing with RBAC), kube-controller-manager (the Job,
// TTL-after-finished, garbage collector and service account controllers)
// and kube-scheduler, each a process of the test on loopback ports with its
// data in a temporary directory, all killed when the test ends. A Kubelet
// (kubelet.go) plays the one part no process of the control plane plays: it
// registers a Node and runs the pods bound to it as local processes,
// writing their status through the API.
//
// The binaries are built from Go modules by build.sh into BinDir. Where
// they are absent, Start skips the test, or fails it when MLBOT_TEST_REQUIRE
// names "kubernetes" (see internal/testreq).
package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/mlbot/mlbot/internal/testreq"
)

// Version is the Kubernetes version build.sh builds.
const Version = "v1.37.2"

// EnvBin names the directory holding the binaries, when not BinDir's default.
const EnvBin = "MLBOT_KUBE_BIN"

// Server is the name MLBOT_TEST_REQUIRE uses for this control plane.
const Server = "kubernetes"

// Users the API server knows, each by a bearer token of the cluster.
const (
	// AdminUser is in the system:masters group: it may do anything.
	AdminUser = "kubetest-admin"
	// MlbotUser is mlbot's identity: the name a ServiceAccount "mlbot" in
	// namespace "mlbot" has, so that the RoleBinding operators apply
	// (ops/kubernetes) binds it. It has no other rights.
	MlbotUser = "system:serviceaccount:mlbot:mlbot"
)

// binaries are the programs Start runs, all in BinDir.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}

// BinDir is where build.sh puts the binaries: $MLBOT_KUBE_BIN, or
// $HOME/.cache/mlbot/kube/<Version>.
func BinDir() string {
	if d := os.Getenv(EnvBin); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".cache", "mlbot", "kube", Version)
}

// Cluster is a running control plane.
type Cluster struct {
	// Server is the API server's URL ("https://127.0.0.1:<port>").
	Server string
	// CAFile verifies the API server's serving certificate.
	CAFile string
	// Dir holds the components' data and logs.
	Dir string
	// Admin is a client with every right (AdminUser).
	Admin kubernetes.Interface

	tokens map[string]string // user → token
	procs  []*process
}

// Start runs a control plane for t and stops it when t ends. It skips t
// (or fails it, see the package comment) when the binaries are absent.
func Start(t testing.TB) *Cluster {
	t.Helper()
	if !supported {
		testreq.Missing(t, Server, "kubetest runs the control plane on Linux only")
		return nil
	}
	bin := BinDir()
	for _, b := range binaries {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			testreq.Missing(t, Server, "no %s in %s (%s): run internal/kubetest/build.sh (about 6 minutes the first time)", b, bin, EnvBin)
			return nil
		}
	}
	c := &Cluster{Dir: t.TempDir(), tokens: map[string]string{}}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range c.procs {
				t.Logf("kubetest: the end of %s's log (%s):\n%s", p.name, p.log, p.tail(40))
			}
		}
	})
	if err := c.start(t, bin); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	return c
}

// Token is the bearer token of user (AdminUser or MlbotUser).
func (c *Cluster) Token(user string) string { return c.tokens[user] }

// Config is a client configuration of the API server as user.
func (c *Cluster) Config(user string) *rest.Config {
	return &rest.Config{
		Host:            c.Server,
		BearerToken:     c.tokens[user],
		TLSClientConfig: rest.TLSClientConfig{CAFile: c.CAFile},
		QPS:             100,
		Burst:           200,
	}
}

// Client is a clientset of the API server as user.
func (c *Cluster) Client(t testing.TB, user string) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.Config(user))
	if err != nil {
		t.Fatalf("kubetest: client for %s: %v", user, err)
	}
	return cs
}

// users are the identities of the token file: user → groups.
var users = []struct{ name, groups string }{
	{AdminUser, "system:masters"},
	{"system:kube-controller-manager", "system:masters"},
	{"system:kube-scheduler", "system:masters"},
	{MlbotUser, "system:serviceaccounts,system:serviceaccounts:mlbot"},
}

// start writes the cluster's files and starts its components in order,
// each waited for.
func (c *Cluster) start(t testing.TB, bin string) error {
	var lines []string
	for i, u := range users {
		tok := randomHex(24)
		c.tokens[u.name] = tok
		lines = append(lines, fmt.Sprintf("%s,%s,uid-%d,%q", tok, u.name, i, u.groups))
	}
	tokens := filepath.Join(c.Dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	saKey, err := writeKey(filepath.Join(c.Dir, "sa.key"))
	if err != nil {
		return err
	}

	etcdURL, err := c.startEtcd(t, bin)
	if err != nil {
		return err
	}
	if err := c.startAPIServer(t, bin, etcdURL, tokens, saKey); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(c.Config(AdminUser))
	if err != nil {
		return err
	}
	c.Admin = cs
	for _, comp := range []struct{ name, user string }{
		{"kube-controller-manager", "system:kube-controller-manager"},
		{"kube-scheduler", "system:kube-scheduler"},
	} {
		if err := c.writeKubeconfig(comp.name+".kubeconfig", comp.user); err != nil {
			return err
		}
	}
	if err := c.startComponent(t, bin, "kube-controller-manager",
		"--controllers=job-controller,ttl-after-finished-controller,garbage-collector-controller,serviceaccount-controller",
		"--use-service-account-credentials=false",
		// The garbage collector and the job controller react within
		// seconds; the defaults suit a cluster of thousands of objects.
		"--concurrent-gc-syncs=5",
	); err != nil {
		return err
	}
	if err := c.startComponent(t, bin, "kube-scheduler"); err != nil {
		return err
	}
	// The service account controller gives every namespace its "default"
	// ServiceAccount, which pods need: its appearance in "default" says
	// the controller manager is at work.
	return poll(30*time.Second, func() error {
		_, err := c.Admin.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{})
		return err
	})
}

// startEtcd starts etcd and returns its client URL.
func (c *Cluster) startEtcd(t testing.TB, bin string) (string, error) {
	var url string
	err := retryPorts(2, func(ports []int) (*process, error) {
		client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		data := filepath.Join(c.Dir, "etcd")
		os.RemoveAll(data)
		p, err := startProcess(c.Dir, "etcd", filepath.Join(bin, "etcd"),
			"--name=default", "--data-dir="+data,
			"--listen-client-urls="+client, "--advertise-client-urls="+client,
			"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
			"--initial-cluster=default="+peer,
			"--unsafe-no-fsync=true", "--log-level=warn")
		if err != nil {
			return nil, err
		}
		url = client
		return p, p.waitReady(30*time.Second, func() error { return httpOK(http.DefaultClient, client+"/health", "") })
	}, c, t)
	return url, err
}

// startAPIServer starts kube-apiserver against etcdURL.
func (c *Cluster) startAPIServer(t testing.TB, bin, etcdURL, tokens, saKey string) error {
	certs := filepath.Join(c.Dir, "apiserver-certs")
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	return retryPorts(1, func(ports []int) (*process, error) {
		c.Server = "https://127.0.0.1:" + strconv.Itoa(ports[0])
		c.CAFile = filepath.Join(certs, "apiserver.crt")
		p, err := startProcess(c.Dir, "kube-apiserver", filepath.Join(bin, "kube-apiserver"),
			"--etcd-servers="+etcdURL,
			"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
			// Without it the server exits: "cannot use public IP 127.0.0.1
			// with endpoint reconciler".
			"--endpoint-reconciler-type=none",
			"--secure-port="+strconv.Itoa(ports[0]), "--cert-dir="+certs,
			"--service-cluster-ip-range=10.0.0.0/24",
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file="+saKey, "--service-account-signing-key-file="+saKey,
			"--token-auth-file="+tokens,
			"--authorization-mode=RBAC",
			"--anonymous-auth=false",
		)
		if err != nil {
			return nil, err
		}
		return p, p.waitReady(60*time.Second, func() error {
			return httpOK(insecure, c.Server+"/readyz", c.tokens[AdminUser])
		})
	}, c, t)
}

// startComponent starts kube-controller-manager or kube-scheduler with its
// kubeconfig and the flags they share, plus args.
func (c *Cluster) startComponent(t testing.TB, bin, name string, args ...string) error {
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	kubeconfig := filepath.Join(c.Dir, name+".kubeconfig")
	return retryPorts(1, func(ports []int) (*process, error) {
		all := append([]string{
			"--kubeconfig=" + kubeconfig,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(ports[0]),
			"--cert-dir=" + filepath.Join(c.Dir, name+"-certs"),
		}, args...)
		p, err := startProcess(c.Dir, name, filepath.Join(bin, name), all...)
		if err != nil {
			return nil, err
		}
		url := "https://127.0.0.1:" + strconv.Itoa(ports[0]) + "/healthz"
		return p, p.waitReady(60*time.Second, func() error { return httpOK(insecure, url, "") })
	}, c, t)
}

// retryPorts picks n free ports and runs start with them, again with new
// ports (up to three times) when a port was taken meanwhile. The process
// started is stopped when t ends.
func retryPorts(n int, start func(ports []int) (*process, error), c *Cluster, t testing.TB) error {
	var err error
	for range 3 {
		var ports []int
		if ports, err = freePorts(n); err != nil {
			return err
		}
		var p *process
		p, err = start(ports)
		if p != nil {
			c.procs = append(c.procs, p)
			t.Cleanup(func() { p.stop(10 * time.Second) })
		}
		if err == nil || !errors.Is(err, errPortTaken) {
			return err
		}
	}
	return err
}

// writeKubeconfig writes a kubeconfig in c.Dir for user.
func (c *Cluster) writeKubeconfig(name, user string) error {
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: kubetest
  context: {cluster: kubetest, user: %q}
current-context: kubetest
`, c.Server, c.CAFile, strconv.Quote(user), c.tokens[user], user)
	return os.WriteFile(filepath.Join(c.Dir, name), []byte(cfg), 0o600)
}

// writeKey writes a new ECDSA private key for service account tokens.
func writeKey(path string) (string, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", err
	}
	return path, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

// httpOK GETs url (with a bearer token when given) and wants 200.
func httpOK(client *http.Client, url, token string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// poll calls f every 100ms until it returns nil or timeout passes.
func poll(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// randomHex is n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Namespace creates namespace name with labels and waits for its default
// ServiceAccount.
func (c *Cluster) Namespace(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.Admin.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: namespace %s: %v", name, err)
	}
	if err := poll(30*time.Second, func() error {
		_, err := c.Admin.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		t.Fatalf("kubetest: namespace %s has no default ServiceAccount: %v", name, err)
	}
}

// Kubeconfig writes a kubeconfig file for user (a token of the token
// file, such as MlbotUser) and returns its path: what an operator hands
// mlbot through MLBOT_K8S_KUBECONFIG.
func (c *Cluster) Kubeconfig(t testing.TB, user string) string {
	t.Helper()
	name := "user-" + randomHex(4) + ".kubeconfig"
	if err := c.writeKubeconfig(name, user); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(c.Dir, name)
}
