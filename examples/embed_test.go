package examples

import (
	"io/fs"
	"strings"
	"testing"
)

func TestDigitsFS(t *testing.T) {
	for _, name := range []string{
		"digits/.mlbot.yml",
		"digits/softmax.go",
		"digits/digits.csv.gz",
		"digits/README.md",
		"digits/DATA-LICENSE.md",
	} {
		b, err := fs.ReadFile(Digits, name)
		if err != nil {
			t.Errorf("Digits lacks %s: %v", name, err)
			continue
		}
		if len(b) == 0 {
			t.Errorf("%s is empty", name)
		}
	}

	cfg, err := fs.ReadFile(Digits, "digits/.mlbot.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"go run softmax.go train", "go run softmax.go evaluate", "metrics.json", "model.json", "accuracy:"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf(".mlbot.yml lacks %q", want)
		}
	}

	gz, err := fs.ReadFile(Digits, "digits/digits.csv.gz")
	if err != nil {
		t.Fatal(err)
	}
	if len(gz) < 2 || gz[0] != 0x1f || gz[1] != 0x8b {
		t.Error("digits.csv.gz is not gzip data")
	}

	// No training outputs left over from a local run get shipped.
	err = fs.WalkDir(Digits, "digits", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if base := d.Name(); base == "model.json" || base == "metrics.json" {
			t.Errorf("Digits ships %s, an output of a local run", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
