package jobs

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/hibiken/asynq"

	"github.com/mlbot/mlbot/configs"
)

// Every task mlbot enqueues is signed, and every task its servers take is
// verified before any handler sees it: whoever else can write to Redis (a
// training that found its port, a neighbour on a shared Redis) cannot make
// mlbot run anything. The signature is an HMAC-SHA256, keyed with the
// install's task key, over the task's type, its payload and every header
// (the webhook task's forge, delivery and event are headers).

// TaskKeyFile is the name of the generated task key inside MLBOT_DATA_DIR.
const TaskKeyFile = "task.key"

// MinTaskKeyLen is the shortest task key accepted, in bytes.
const MinTaskKeyLen = 32

// headerSignature is the task header carrying the signature.
const headerSignature = "mlbot-sig"

// sigVersion prefixes the signature so that the scheme can change.
const sigVersion = "v1="

// errBadSignature marks a task whose signature is missing or wrong.
var errBadSignature = errors.New("task signature missing or invalid")

// TaskSigner signs the tasks mlbot enqueues and verifies those it runs.
type TaskSigner struct {
	key []byte
}

// NewTaskSigner returns a signer keyed with key, which must hold at least
// MinTaskKeyLen bytes.
func NewTaskSigner(key []byte) (*TaskSigner, error) {
	if len(key) < MinTaskKeyLen {
		return nil, fmt.Errorf("task key is %d bytes, want at least %d", len(key), MinTaskKeyLen)
	}
	return &TaskSigner{key: slices.Clone(key)}, nil
}

// NewTask is asynq.NewTask with a signature.
func (s *TaskSigner) NewTask(typename string, payload []byte, opts ...asynq.Option) *asynq.Task {
	return s.NewTaskWithHeaders(typename, payload, nil, opts...)
}

// NewTaskWithHeaders is asynq.NewTaskWithHeaders with a signature over
// typename, payload and headers.
func (s *TaskSigner) NewTaskWithHeaders(typename string, payload []byte, headers map[string]string, opts ...asynq.Option) *asynq.Task {
	h := make(map[string]string, len(headers)+1)
	for k, v := range headers {
		if k != headerSignature {
			h[k] = v
		}
	}
	h[headerSignature] = sigVersion + hex.EncodeToString(s.mac(typename, payload, h))
	return asynq.NewTaskWithHeaders(typename, payload, h, opts...)
}

// Verify reports whether t carries a valid signature, comparing in
// constant time.
func (s *TaskSigner) Verify(t *asynq.Task) error {
	h := t.Headers()
	sig, ok := strings.CutPrefix(h[headerSignature], sigVersion)
	if !ok {
		return errBadSignature
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return errBadSignature
	}
	if !hmac.Equal(got, s.mac(t.Type(), t.Payload(), h)) {
		return errBadSignature
	}
	return nil
}

// mac is the HMAC of a task: a version tag, then the type, the payload and
// each header but the signature in key order, every field length-prefixed
// so that no two tasks share an encoding.
func (s *TaskSigner) mac(typename string, payload []byte, headers map[string]string) []byte {
	m := hmac.New(sha256.New, s.key)
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		m.Write(n[:])
		m.Write(b)
	}
	field([]byte("mlbot-task-v1"))
	field([]byte(typename))
	field(payload)
	keys := make([]string, 0, len(headers))
	for k := range headers {
		if k != headerSignature {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		field([]byte(k))
		field([]byte(headers[k]))
	}
	return m.Sum(nil)
}

// Middleware refuses every task without a valid signature: it is never
// handed to a handler, and its error wraps asynq.SkipRetry so that asynq
// archives it at once.
func (s *TaskSigner) Middleware(log *slog.Logger) asynq.MiddlewareFunc {
	return func(next asynq.Handler) asynq.Handler {
		return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
			if err := s.Verify(t); err != nil {
				id, _ := asynq.GetTaskID(ctx)
				queue, _ := asynq.GetQueueName(ctx)
				log.Error("refused a task mlbot did not sign: it is archived and never run; something other than mlbot writes to its Redis",
					"type", t.Type(), "id", id, "queue", queue)
				return fmt.Errorf("%s task %s: %w: %w", t.Type(), id, err, asynq.SkipRetry)
			}
			return next.ProcessTask(ctx, t)
		})
	}
}

// LoadTaskKey returns the task key: configured (MLBOT_TASK_KEY) when set,
// otherwise the key kept in dataDir/task.key, generated with mode 0600 the
// first time. Every process of one install (serve and workers sharing the
// data directory) thus uses one key; processes on other machines must be
// given the same MLBOT_TASK_KEY. A key file readable or writable by group
// or others is refused.
func LoadTaskKey(configured, dataDir string) ([]byte, error) {
	if configured != "" {
		if len(configured) < MinTaskKeyLen {
			return nil, fmt.Errorf("MLBOT_TASK_KEY is %d characters, want at least %d", len(configured), MinTaskKeyLen)
		}
		return []byte(configured), nil
	}
	name := filepath.Join(dataDir, TaskKeyFile)
	key, err := readTaskKey(name)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	if err := createTaskKey(name); err != nil {
		return nil, err
	}
	return readTaskKey(name)
}

// readTaskKey reads an existing key file, refusing a symlink, anything but
// a regular file, and a mode that lets group or others in.
func readTaskKey(name string) ([]byte, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("task key: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("task key: %w", err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("task key %s is not a regular file", name)
	}
	if err := configs.CheckPrivateMode(name, "task key file", info); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("task key: %w", err)
	}
	key := strings.TrimSpace(string(b))
	if len(key) < MinTaskKeyLen {
		return nil, fmt.Errorf("task key %s holds %d characters, want at least %d: remove it to have a new one generated (every process of the install must then restart)", name, len(key), MinTaskKeyLen)
	}
	return []byte(key), nil
}

// createTaskKey writes a new random key to name atomically: the key is
// written to a private temporary file, which is then hard-linked to name.
// The link fails if name exists, so when two processes start at once on
// one data directory both end up reading the one that won.
func createTaskKey(name string) error {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("task key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, TaskKeyFile+".tmp-*") // mode 0600
	if err != nil {
		return fmt.Errorf("task key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(newTaskKey(), '\n'))
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("task key: %w", err)
	}
	if err := os.Link(tmp.Name(), name); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("task key: %w", err)
	}
	return nil
}

// newTaskKey returns a random key of 256 bits, hex-encoded so that it can
// be copied into MLBOT_TASK_KEY.
func newTaskKey() []byte {
	raw := make([]byte, 32)
	rand.Read(raw) // never fails (crypto/rand panics rather)
	return []byte(hex.EncodeToString(raw))
}
