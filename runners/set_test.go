package runners_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mlbot/mlbot/runners"
)

// nopRunner is a runner that runs nothing, told apart by its name.
type nopRunner struct{ name string }

func (nopRunner) Run(context.Context, runners.Spec) (runners.Result, error) {
	return runners.Result{}, nil
}

func TestSetGet(t *testing.T) {
	local, docker := nopRunner{"local"}, nopRunner{"docker"}
	set := runners.Set{runners.Local: local, "docker": docker, "kubernetes": nil}
	for _, tc := range []struct {
		name    string
		want    runners.Runner
		wantErr string
	}{
		{name: "local", want: local},
		{name: "docker", want: docker},
		{name: "kubernetes", wantErr: `unknown runner "kubernetes": this mlbot has docker, local`},
		{name: "", wantErr: `unknown runner "": this mlbot has docker, local`},
		{name: "Local", wantErr: `unknown runner "Local": this mlbot has docker, local`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := set.Get(tc.name)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr || !errors.Is(err, runners.ErrUnknownRunner) || got != nil {
					t.Fatalf("Get(%q) = %v, %v; want nil and %q wrapping ErrUnknownRunner", tc.name, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Get(%q) = %v, %v; want %v", tc.name, got, err, tc.want)
			}
		})
	}
}

func TestSetEmpty(t *testing.T) {
	var set runners.Set
	if _, err := set.Get(runners.Local); err == nil || !strings.HasSuffix(err.Error(), "this mlbot has none") {
		t.Fatalf("Get on an empty set: %v", err)
	}
	if names := set.Names(); len(names) != 0 {
		t.Fatalf("Names of an empty set = %v", names)
	}
}

func TestSetNames(t *testing.T) {
	set := runners.Set{"kubernetes": nopRunner{}, runners.Local: nopRunner{}, "docker": nopRunner{}, "off": nil}
	if got, want := set.Names(), []string{"docker", "kubernetes", "local"}; !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
}
