package configs

import (
	"strings"
	"testing"
)

func TestParseQuantities(t *testing.T) {
	cpu := []struct {
		in   string
		want int64
		ok   bool
	}{{"2", 2000, true}, {"0.5", 500, true}, {"500m", 500, true}, {"1.5m", 2, true},
		{"", 0, false}, {"lots", 0, false}, {"-1", 0, false}, {"1e3", 0, false}, {"2Gi", 0, false}}
	for _, c := range cpu {
		got, err := ParseCPU(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseCPU(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
	mem := []struct {
		in   string
		want int64
		ok   bool
	}{{"512Mi", 512 << 20, true}, {"4Gi", 4 << 30, true}, {"1G", 1e9, true}, {"1048576", 1 << 20, true},
		{"1.5Gi", 3 << 29, true}, {"4Xi", 0, false}, {"Gi", 0, false}, {"0", 0, false}, {"-1Gi", 0, false}}
	for _, c := range mem {
		got, err := ParseBytes(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
	if FormatBytes(8<<30) != "8Gi" || FormatBytes(1536<<20) != "1536Mi" || FormatCPU(500) != "500m" || FormatCPU(4000) != "4" {
		t.Errorf("Format: %s %s %s %s", FormatBytes(8<<30), FormatBytes(1536<<20), FormatCPU(500), FormatCPU(4000))
	}
}

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
