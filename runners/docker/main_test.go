package docker

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/moby/moby/client"

	"github.com/mlbot/mlbot/internal/dockertest"
	"github.com/mlbot/mlbot/internal/testreq"
)

// testEnv is what TestMain prepares once for the tests that use the
// real engine: a client, a busybox image imported from a root filesystem
// made here, and a static mlbot binary. err says why there is none.
var testEnv struct {
	dir    string
	cli    *client.Client
	image  string
	binary string
	err    error
}

func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "mlbot-docker-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		testEnv.dir = dir
		testEnv.err = setUp(dir)
		defer tearDown()
		return m.Run()
	}())
}

// setUp connects to the engine and prepares the image and the binary.
func setUp(dir string) error {
	cli, err := dockertest.Engine()
	if err != nil {
		return err
	}
	testEnv.cli = cli
	if testEnv.image, err = dockertest.ImportBusybox(cli); err != nil {
		return err
	}
	testEnv.binary = filepath.Join(dir, "mlbot")
	return dockertest.BuildStaticMlbot(testEnv.binary)
}

// tearDown removes the test image.
func tearDown() {
	if testEnv.cli == nil || testEnv.image == "" {
		return
	}
	dockertest.RemoveImage(testEnv.cli, testEnv.image)
}

// needEngine ends t unless TestMain prepared the engine, the image and
// the binary.
func needEngine(t *testing.T) {
	t.Helper()
	if testEnv.err != nil {
		testreq.Missing(t, "docker", "%v", testEnv.err)
	}
}
