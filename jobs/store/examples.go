package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/mlbot/mlbot/jobs/report"
)

// ErrNoExamples is returned for a run whose per-example results are not
// kept (it wrote none, or they expired).
var ErrNoExamples = errors.New("no per-example results kept")

// PutExamples keeps run id's encoded per-example results (report.
// EncodeExamples) for RunTTL, refusing more than report.MaxExamplesBlobBytes.
func (s *Store) PutExamples(ctx context.Context, id string, blob []byte) error {
	if len(blob) > report.MaxExamplesBlobBytes {
		return fmt.Errorf("run %s examples: %d bytes, over the limit of %d", id, len(blob), report.MaxExamplesBlobBytes)
	}
	if err := s.rdb.Set(ctx, s.examplesKey(id), blob, RunTTL).Err(); err != nil {
		return fmt.Errorf("run %s examples: %w", id, err)
	}
	return nil
}

// Examples returns run id's per-example results; ErrNoExamples when none
// are kept.
func (s *Store) Examples(ctx context.Context, id string) (*report.Examples, error) {
	blob, err := s.rdb.Get(ctx, s.examplesKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("run %s: %w", id, ErrNoExamples)
	}
	if err != nil {
		return nil, fmt.Errorf("run %s examples: %w", id, err)
	}
	e, err := report.DecodeExamples(blob)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", id, err)
	}
	return e, nil
}
