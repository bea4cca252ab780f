package kubernetes

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mlbot/mlbot/runners"
	"github.com/mlbot/mlbot/runners/agentapi"
)

// GPUResource is the extended resource of NVIDIA's device plugin.
const GPUResource corev1.ResourceName = "nvidia.com/gpu"

// Paths inside the pod.
const (
	binDir       = "/mlbot/bin"
	agentPath    = binDir + "/mlbot"
	workspaceDir = agentapi.DefaultWorkdir
	// ContainerName is the name of the pod's container that runs the agent.
	ContainerName = "job"
	// InitContainerName is the name of the init container that copies mlbot.
	InitContainerName = "mlbot-install"
)

// pendingSlack is what the Job's activeDeadlineSeconds adds to the job's
// timeout and the pending timeout: the Job ends by itself even when no
// worker watches it any more.
const pendingSlack = 5 * time.Minute

// labels are the labels of run id's objects.
func (r *Runner) labels(job runners.Job) map[string]string {
	return map[string]string{
		LabelRun:       RunLabel(job.ID),
		LabelManagedBy: "mlbot",
		LabelNetwork:   strconv.FormatBool(job.Network),
	}
}

// agentJob is the job as the agent fetches it.
func (r *Runner) agentJob(job runners.Job) agentapi.Job {
	return agentapi.Job{
		RunID:            job.ID,
		Steps:            job.Steps,
		Env:              job.Env,
		Timeout:          agentapi.Duration(job.Timeout),
		Grace:            agentapi.Duration(r.opts.Grace),
		Metrics:          job.Metrics,
		Artifacts:        job.Artifacts,
		Examples:         job.Examples,
		MaxArtifactBytes: r.opts.MaxArtifactBytes,
	}
}

// jobObject is attempt n's Job of job, created suspended: the runner
// resumes it once the Secret it names exists.
func (r *Runner) jobObject(job runners.Job, attempt int) (*batchv1.Job, error) {
	res, err := r.resources(job.Resources)
	if err != nil {
		return nil, err
	}
	tols, err := ParseTolerations(job.Resources.Tolerations)
	if err != nil {
		return nil, err
	}
	name := jobName(job.ID, attempt)
	labels := r.labels(job)
	annotations := map[string]string{AnnotationRun: job.ID, AnnotationAttempt: strconv.Itoa(attempt)}
	restricted := &corev1.SecurityContext{
		AllowPrivilegeEscalation: new(false),
		ReadOnlyRootFilesystem:   new(true),
		RunAsNonRoot:             new(true),
		RunAsUser:                new(int64(DefaultUID)),
		RunAsGroup:               new(int64(DefaultUID)),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	volumes := []corev1.Volume{
		{Name: "mlbot-bin", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "workspace", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	mounts := []corev1.VolumeMount{
		{Name: "mlbot-bin", MountPath: binDir, ReadOnly: true},
		{Name: "workspace", MountPath: workspaceDir},
		{Name: "tmp", MountPath: "/tmp"},
	}
	if s := job.Resources.ShmSize; s != "" {
		q, err := resource.ParseQuantity(s)
		if err != nil {
			return nil, fmt.Errorf("shm size %q: %w", s, err)
		}
		volumes = append(volumes, corev1.Volume{Name: "dshm", VolumeSource: corev1.VolumeSource{
			EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &q}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "dshm", MountPath: "/dev/shm"})
	}
	var pullSecrets []corev1.LocalObjectReference
	for _, s := range r.opts.ImagePullSecrets {
		pullSecrets = append(pullSecrets, corev1.LocalObjectReference{Name: s})
	}
	var runtimeClass *string
	if r.opts.RuntimeClass != "" {
		runtimeClass = new(r.opts.RuntimeClass)
	}
	grace := int64((2*r.opts.Grace + time.Second - 1) / time.Second)
	pod := corev1.PodSpec{
		RestartPolicy:                 corev1.RestartPolicyNever,
		ServiceAccountName:            r.opts.ServiceAccount,
		AutomountServiceAccountToken:  new(false),
		EnableServiceLinks:            new(false),
		RuntimeClassName:              runtimeClass,
		ImagePullSecrets:              pullSecrets,
		NodeSelector:                  maps.Clone(job.Resources.NodeSelector),
		Tolerations:                   tols,
		TerminationGracePeriodSeconds: &grace,
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   new(true),
			RunAsUser:      new(int64(DefaultUID)),
			RunAsGroup:     new(int64(DefaultUID)),
			FSGroup:        new(int64(DefaultUID)),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		Volumes: volumes,
		InitContainers: []corev1.Container{{
			Name:    InitContainerName,
			Image:   r.opts.AgentImage,
			Command: []string{"cp", r.opts.AgentBinary, agentPath},
			VolumeMounts: []corev1.VolumeMount{
				{Name: "mlbot-bin", MountPath: binDir},
			},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			},
			SecurityContext: restricted,
		}},
		Containers: []corev1.Container{{
			Name:       ContainerName,
			Image:      job.Image,
			Command:    []string{agentPath, "agent"},
			WorkingDir: workspaceDir,
			Env: []corev1.EnvVar{
				{Name: agentapi.EnvURL, Value: r.opts.AgentURL},
				{Name: agentapi.EnvToken, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: secretKey}}},
				{Name: agentapi.EnvWorkdir, Value: workspaceDir},
				{Name: "HOME", Value: "/tmp"},
				{Name: "TMPDIR", Value: "/tmp"},
			},
			VolumeMounts:    mounts,
			Resources:       res,
			SecurityContext: restricted,
		}},
	}
	spec := batchv1.JobSpec{
		Suspend:                 new(true),
		BackoffLimit:            new(int32(0)),
		TTLSecondsAfterFinished: new(int32(r.opts.TTLAfterFinished / time.Second)),
		Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations},
			Spec:       pod,
		},
	}
	if job.Timeout > 0 {
		spec.ActiveDeadlineSeconds = new(int64((job.Timeout + r.opts.PendingTimeout + pendingSlack) / time.Second))
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.opts.Namespace, Labels: labels, Annotations: annotations},
		Spec:       spec,
	}, nil
}

// secretObject is the Secret holding the token of the Job j, owned by j.
func (r *Runner) secretObject(j *batchv1.Job, token string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: j.Name, Namespace: j.Namespace, Labels: j.Labels, Annotations: j.Annotations,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: j.Name, UID: j.UID}},
		},
		Type:      corev1.SecretTypeOpaque,
		Immutable: new(true),
		Data:      map[string][]byte{secretKey: []byte(token)},
	}
}

// resources are the container's requests and limits: the job's CPU and
// memory (else the Options'), both as request and limit, and its GPUs as
// a limit (the request of an extended resource defaults to its limit).
func (r *Runner) resources(res runners.Resources) (corev1.ResourceRequirements, error) {
	out := corev1.ResourceRequirements{Requests: corev1.ResourceList{}, Limits: corev1.ResourceList{}}
	for name, q := range map[corev1.ResourceName]string{
		corev1.ResourceCPU:    firstNonEmpty(res.CPU, r.opts.CPU),
		corev1.ResourceMemory: firstNonEmpty(res.Memory, r.opts.Memory),
	} {
		if q == "" {
			continue
		}
		v, err := resource.ParseQuantity(q)
		if err != nil {
			return out, fmt.Errorf("%s %q: %w", name, q, err)
		}
		out.Requests[name] = v
		out.Limits[name] = v
	}
	if res.GPUs < 0 {
		return out, fmt.Errorf("gpus %d: want 0 or more", res.GPUs)
	}
	if res.GPUs > 0 {
		out.Limits[GPUResource] = *resource.NewQuantity(int64(res.GPUs), resource.DecimalSI)
	}
	return out, nil
}

// ParseTolerations parses tolerations written "key=value:effect" (operator
// Equal), "key:effect" or "key" (operator Exists, any effect when none is
// given). Keys, values and effects are checked by the API server.
func ParseTolerations(specs []string) ([]corev1.Toleration, error) {
	var out []corev1.Toleration
	for _, s := range specs {
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, fmt.Errorf("toleration %q: empty", s)
		}
		rest, effect, hasEffect := strings.Cut(s, ":")
		key, value, hasValue := strings.Cut(rest, "=")
		if key == "" || hasEffect && effect == "" {
			return nil, fmt.Errorf("toleration %q: want key=value:effect, key:effect or key", s)
		}
		t := corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffect(effect)}
		if hasValue {
			t.Operator, t.Value = corev1.TolerationOpEqual, value
		}
		out = append(out, t)
	}
	return out, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// memoryLimit describes the container's memory limit for a message.
func memoryLimit(res corev1.ResourceRequirements) string {
	if q, ok := res.Limits[corev1.ResourceMemory]; ok {
		return q.String()
	}
	return "none set"
}
