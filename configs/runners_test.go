package configs

import (
	"strings"
	"testing"
)

func TestParseResources(t *testing.T) {
	c, err := ParseRepoConfig(".mlbot.yml", []byte(`version: 1
pipeline:
  train: python train.py
  metrics: [m.json]
  runner: kubernetes
  image: pytorch/pytorch:2.4
  resources:
    cpu: 500m
    memory: 4Gi
    gpus: 2
    shm_size: 1Gi
    node_selector: {gpu: a100}
    tolerations: ["nvidia.com/gpu=present:NoSchedule", "dedicated"]
`))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Pipeline.Resources
	if r.CPUMilli != 500 || r.MemoryBytes != 4<<30 || r.GPUs != 2 || r.ShmBytes != 1<<30 ||
		r.NodeSelector["gpu"] != "a100" || len(r.Tolerations) != 2 {
		t.Errorf("resources = %+v", r)
	}
}

func TestRunnerLimitsCheck(t *testing.T) {
	lim := RunnerLimits{Images: []string{"pytorch/pytorch:*", "mlbot-test"}, MaxCPU: "4", MaxMemory: 8 << 30, MaxGPUs: 1}
	cases := []struct {
		name string
		p    Pipeline
		want []string // substrings of the error; none: allowed
	}{
		{"within bounds", Pipeline{Runner: "docker", Image: "pytorch/pytorch:2.4", Resources: Resources{CPUMilli: 4000, MemoryBytes: 8 << 30, GPUs: 1}}, nil},
		{"no image", Pipeline{Runner: "docker"}, []string{"pipeline.image is required with runner docker"}},
		{"image not allowed", Pipeline{Runner: "docker", Image: "evil/miner"}, []string{`pipeline.image "evil/miner" is not an image this mlbot runs (MLBOT_DOCKER_IMAGES: pytorch/pytorch:*, mlbot-test)`}},
		{"glob stays in its segment", Pipeline{Runner: "docker", Image: "pytorch/pytorch:2.4/../x"}, []string{"is not an image"}},
		{"too much", Pipeline{Runner: "docker", Image: "mlbot-test", Resources: Resources{CPUMilli: 8000, MemoryBytes: 64 << 30, GPUs: 8}},
			[]string{"pipeline.resources.cpu 8 is more than the limit of 4 per run (MLBOT_DOCKER_MAX_CPU)",
				"pipeline.resources.memory 64Gi is more than the limit of 8Gi per run (MLBOT_DOCKER_MAX_MEMORY)",
				"pipeline.resources.gpus 8 is more than the limit of 1 per run (MLBOT_DOCKER_MAX_GPUS)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := lim.Check(c.p, "MLBOT_DOCKER_")
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Check = nil, want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check = %q, want it to contain %q", err, w)
				}
			}
		})
	}
	if got := (RunnerLimits{}).Check(Pipeline{Runner: "docker", Image: "x"}, "MLBOT_DOCKER_"); got == nil || !strings.Contains(got.Error(), "MLBOT_DOCKER_IMAGES: none") {
		t.Errorf("no images allowed: Check = %v", got)
	}
	if got := lim.Apply(Resources{}); got.MemoryBytes != 8<<30 {
		t.Errorf("Apply did not default the memory: %+v", got)
	}
}
