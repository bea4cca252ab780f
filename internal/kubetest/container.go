package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// runningContainer is a container's process tree: a session of its own.
type runningContainer struct {
	name    string
	id      string
	cmd     *exec.Cmd
	started metav1.Time
	done    chan struct{} // closed once the process ended and the fields below are set

	mu       sync.Mutex
	oom      bool // killed for exceeding its memory limit
	killed   bool // killed by the kubelet (eviction, deletion)
	exitCode int32
	finished metav1.Time
}

// startContainer starts container c of the pod with the pod's volumes.
func (r *podRun) startContainer(c corev1.Container, vols map[string]string) (*runningContainer, error) {
	paths := r.paths(c, vols)
	env, err := r.env(c)
	if err != nil {
		return nil, err
	}
	argv := append(append([]string{}, c.Command...), c.Args...)
	if len(argv) == 0 {
		return nil, fmt.Errorf("container %q has no command: kubetest's kubelet cannot run an image's entrypoint", c.Name)
	}
	vars := map[string]string{}
	for i, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		v = paths.translate(v)
		env[i] = k + "=" + v
		vars[k] = v
	}
	for i := range argv {
		argv[i] = paths.translate(expandVars(argv[i], vars))
	}
	for k, v := range map[string]string{"PATH": os.Getenv("PATH"), "HOME": r.dir} {
		if _, ok := vars[k]; !ok {
			env = append(env, k+"="+v)
		}
	}
	if tmp := paths.translate("/tmp"); tmp != "/tmp" {
		if _, ok := vars["TMPDIR"]; !ok {
			env = append(env, "TMPDIR="+tmp)
		}
	}
	bin := argv[0]
	if !strings.Contains(bin, "/") {
		if bin, err = exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("container %q: %w", c.Name, err)
		}
	}
	dir := r.dir
	if c.WorkingDir != "" {
		dir = paths.translate(c.WorkingDir)
	}
	logs := filepath.Join(r.dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(logs, c.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := &exec.Cmd{Path: bin, Args: argv, Env: env, Dir: dir, Stdout: logf, Stderr: logf,
		SysProcAttr: sysProcAttr()}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("container %q: %w", c.Name, err)
	}
	rc := &runningContainer{name: c.Name, id: "kubetest://" + strconv.Itoa(cmd.Process.Pid), cmd: cmd,
		started: metav1.Now(), done: make(chan struct{})}
	go rc.wait()
	if limit := c.Resources.Limits.Memory(); limit != nil && !limit.IsZero() {
		go rc.watchMemory(limit.Value())
	}
	grace := maxGrace
	if g := r.pod.Spec.TerminationGracePeriodSeconds; g != nil && time.Duration(*g)*time.Second < grace {
		grace = time.Duration(*g) * time.Second
	}
	go func() {
		select {
		case <-r.ctx.Done():
			rc.terminate(grace)
		case <-rc.done:
		}
	}()
	return rc, nil
}

// wait reaps the process and records how it ended.
func (rc *runningContainer) wait() {
	err := rc.cmd.Wait()
	// What the process left running in its session dies with it, as in a
	// container whose first process ended.
	killSession(rc.cmd.Process.Pid)
	code := int32(0)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = int32(ee.ExitCode())
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int32(ws.Signal())
		}
	} else if err != nil {
		code = 128
	}
	rc.mu.Lock()
	rc.exitCode, rc.finished = code, metav1.Now()
	rc.mu.Unlock()
	close(rc.done)
}

// watchMemory kills the container, as the kernel's OOM killer kills a
// cgroup's processes with memory.oom.group set, once its processes'
// resident memory exceeds limit bytes.
func (rc *runningContainer) watchMemory(limit int64) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-rc.done:
			return
		case <-t.C:
		}
		if sessionRSS(rc.cmd.Process.Pid) > limit {
			rc.mu.Lock()
			rc.oom = true
			rc.mu.Unlock()
			killSession(rc.cmd.Process.Pid)
			return
		}
	}
}

// kill ends the container at once and waits for it.
func (rc *runningContainer) kill() {
	rc.mu.Lock()
	rc.killed = true
	rc.mu.Unlock()
	killSession(rc.cmd.Process.Pid)
	<-rc.done
}

// terminate sends SIGTERM to the container's first process, then kills
// the container after grace.
func (rc *runningContainer) terminate(grace time.Duration) {
	rc.mu.Lock()
	rc.killed = true
	rc.mu.Unlock()
	_ = rc.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-rc.done:
	case <-time.After(grace):
		killSession(rc.cmd.Process.Pid)
		<-rc.done
	}
}

// terminated is the container's terminated state; call after done.
func (rc *runningContainer) terminated() *corev1.ContainerStateTerminated {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	reason := "Completed"
	switch {
	case rc.oom:
		reason = "OOMKilled"
	case rc.exitCode != 0:
		reason = "Error"
	}
	return &corev1.ContainerStateTerminated{ExitCode: rc.exitCode, Reason: reason,
		StartedAt: rc.started, FinishedAt: rc.finished, ContainerID: rc.id}
}

// pathMap maps paths in a container to paths on the host.
type pathMap []struct{ from, to string }

// paths is the map of container c: its volume mounts and its image's files.
func (r *podRun) paths(c corev1.Container, vols map[string]string) pathMap {
	var m pathMap
	for _, vm := range c.VolumeMounts {
		if d, ok := vols[vm.Name]; ok {
			m = append(m, struct{ from, to string }{filepath.Clean(vm.MountPath), filepath.Join(d, vm.SubPath)})
		}
	}
	for from, to := range r.k.opts.Images[c.Image].Files {
		m = append(m, struct{ from, to string }{filepath.Clean(from), to})
	}
	sort.Slice(m, func(i, j int) bool { return len(m[i].from) > len(m[j].from) })
	return m
}

// translate maps s when it is a path under one of the map's paths.
func (m pathMap) translate(s string) string {
	for _, p := range m {
		if s == p.from {
			return p.to
		}
		if rest, ok := strings.CutPrefix(s, p.from+"/"); ok {
			return filepath.Join(p.to, rest)
		}
	}
	return s
}

// env is container c's environment ("K=V"), resolved as a kubelet does:
// envFrom first, then env, each value's $(VAR) references expanded.
func (r *podRun) env(c corev1.Container) ([]string, error) {
	ctx := r.ctx
	ns := r.pod.Namespace
	var keys []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	for _, from := range c.EnvFrom {
		switch {
		case from.SecretRef != nil:
			s, err := r.k.cs.CoreV1().Secrets(ns).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				if isOptional(from.SecretRef.Optional) {
					continue
				}
				return nil, err
			}
			for k, v := range s.Data {
				set(from.Prefix+k, string(v))
			}
		case from.ConfigMapRef != nil:
			cm, err := r.k.cs.CoreV1().ConfigMaps(ns).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				if isOptional(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, err
			}
			for k, v := range cm.Data {
				set(from.Prefix+k, v)
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			set(e.Name, expandVars(e.Value, vals))
			continue
		}
		v, ok, err := r.valueFrom(ctx, c, e.ValueFrom)
		if err != nil {
			return nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
		}
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

// valueFrom resolves an env var's source; ok is false for an optional
// key that is not there.
func (r *podRun) valueFrom(ctx context.Context, c corev1.Container, src *corev1.EnvVarSource) (string, bool, error) {
	ns := r.pod.Namespace
	switch {
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := r.k.cs.CoreV1().Secrets(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, err
		}
		v, ok := s.Data[ref.Key]
		if !ok && !isOptional(ref.Optional) {
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, ns, ref.Name)
		}
		return string(v), ok, nil
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := r.k.cs.CoreV1().ConfigMaps(ns).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if isOptional(ref.Optional) {
				return "", false, nil
			}
			return "", false, err
		}
		v, ok := cm.Data[ref.Key]
		if !ok && !isOptional(ref.Optional) {
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, ns, ref.Name)
		}
		return v, ok, nil
	case src.FieldRef != nil:
		p := r.pod
		switch path := src.FieldRef.FieldPath; path {
		case "metadata.name":
			return p.Name, true, nil
		case "metadata.namespace":
			return p.Namespace, true, nil
		case "metadata.uid":
			return string(p.UID), true, nil
		case "spec.nodeName":
			return r.k.Node, true, nil
		case "spec.serviceAccountName":
			return p.Spec.ServiceAccountName, true, nil
		case "status.podIP", "status.hostIP":
			return "127.0.0.1", true, nil
		default:
			for prefix, m := range map[string]map[string]string{"metadata.labels": p.Labels, "metadata.annotations": p.Annotations} {
				if k, ok := strings.CutPrefix(path, prefix+"['"); ok {
					return m[strings.TrimSuffix(k, "']")], true, nil
				}
			}
			return "", false, fmt.Errorf("fieldRef %s: not known to kubetest's kubelet", path)
		}
	case src.ResourceFieldRef != nil:
		res := src.ResourceFieldRef.Resource
		list := c.Resources.Limits
		if strings.HasPrefix(res, "requests.") {
			list = c.Resources.Requests
		}
		_, name, _ := strings.Cut(res, ".")
		q, ok := list[corev1.ResourceName(name)]
		if !ok {
			return "", false, fmt.Errorf("resourceFieldRef %s: the container sets none", res)
		}
		div := src.ResourceFieldRef.Divisor
		if div.IsZero() {
			return strconv.FormatInt(q.Value(), 10), true, nil
		}
		return strconv.FormatInt((q.MilliValue()+div.MilliValue()-1)/div.MilliValue(), 10), true, nil
	}
	return "", false, errors.New("empty valueFrom")
}

func isOptional(b *bool) bool { return b != nil && *b }

// expandVars replaces $(NAME) with vars[NAME] where NAME is defined, and
// $$ with $, as Kubernetes expands a container's command, args and env.
func expandVars(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteByte('$')
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
