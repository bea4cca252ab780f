// Package dockertest prepares what tests of the container runners need
// from the machine's Docker engine, which has no registry to pull from: a
// client that answers, an image made with `docker import` from Debian's
// static busybox, and a statically linked mlbot binary to inject.
package dockertest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	gopath "path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// busybox is where Debian's busybox-static puts its binary.
const busybox = "/bin/busybox"

// Engine returns a client of the machine's Docker engine, or an error
// saying why none answers within a few seconds.
func Engine() (*client.Client, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("no Docker client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, fmt.Errorf("no Docker engine answers: %w", err)
	}
	return cli, nil
}

// BuildStaticMlbot builds mlbot with CGO_ENABLED=0 at path: the binary
// the container runners inject into images that have no C library.
func BuildStaticMlbot(path string) error {
	return BuildStatic(path, "github.com/mlbot/mlbot/cmd/mlbot")
}

// BuildStatic builds the Go package or file pkg with CGO_ENABLED=0 at
// path, to run in an image without a C library.
func BuildStatic(path, pkg string) error {
	gobin := gopath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(gobin, "build", "-o", path, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s statically: %w\n%s", pkg, err, out)
	}
	return nil
}

// RemoveImage removes an image ImportBusybox made.
func RemoveImage(cli *client.Client, ref string) {
	cli.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
}

// ImportBusybox imports an image whose root filesystem is Debian's static
// busybox with a link for each of its applets in /bin, and returns its
// reference.
func ImportBusybox(cli *client.Client) (string, error) {
	return ImportBusyboxWith(cli, nil)
}

// ImportBusyboxWith is ImportBusybox with more executable files in the
// image, by their paths in it ("usr/local/bin/softmax").
func ImportBusyboxWith(cli *client.Client, extra map[string][]byte) (string, error) {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return "", fmt.Errorf("%s: %w (apt-get install busybox-static)", busybox, err)
	}
	if f, err := elf.Open(busybox); err != nil {
		return "", fmt.Errorf("%s: %w", busybox, err)
	} else {
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				return "", fmt.Errorf("%s is linked dynamically: the image needs a static one (apt-get install busybox-static)", busybox)
			}
		}
	}
	list, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return "", fmt.Errorf("busybox --list: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	for _, d := range []string{"bin/", "etc/", "tmp/", "usr/", "usr/local/", "usr/local/bin/"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: now})
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: now})
	tw.Write(bin)
	for _, applet := range strings.Fields(string(list)) {
		if applet != "busybox" {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: now})
		}
	}
	for name, b := range extra {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(b)), ModTime: now})
		tw.Write(b)
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n"
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd)), ModTime: now})
	tw.Write([]byte(passwd))
	if err := tw.Close(); err != nil {
		return "", err
	}
	var b [6]byte
	rand.Read(b[:])
	ref := "mlbot-test/busybox:" + hex.EncodeToString(b[:])
	rc, err := cli.ImageImport(context.Background(), client.ImageImportSource{Source: &buf, SourceName: "-"}, ref,
		client.ImageImportOptions{Changes: []string{"ENV PATH=/bin"}})
	if err != nil {
		return "", fmt.Errorf("import the busybox image: %w", err)
	}
	defer rc.Close()
	// The answer is a stream of JSON messages; a failure is one of them.
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		var msg struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(sc.Bytes(), &msg) == nil && msg.Error != "" {
			return "", fmt.Errorf("import the busybox image: %s", msg.Error)
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("import the busybox image: %w", err)
	}
	return ref, nil
}
