package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/restmapper"
)

// Apply creates, as AdminUser, every object of the YAML manifests in
// files (documents separated by "---"), the way an operator applies them:
// the API server validates each. Namespaced objects are created in
// namespace, whatever their manifest says; cluster-scoped ones as they
// are. It returns the objects as the server stored them.
func (c *Cluster) Apply(t testing.TB, namespace string, files ...string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := c.apply(context.Background(), namespace, files...)
	if err != nil {
		t.Fatalf("kubetest: apply: %v", err)
	}
	return objs
}

func (c *Cluster) apply(ctx context.Context, namespace string, files ...string) ([]*unstructured.Unstructured, error) {
	cfg := c.Config(AdminUser)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	groups, err := restmapper.GetAPIGroupResources(c.Admin.Discovery())
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)
	var out []*unstructured.Unstructured
	for _, f := range files {
		docs, err := readManifests(f)
		if err != nil {
			return out, err
		}
		for _, obj := range docs {
			gvk := obj.GroupVersionKind()
			m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				return out, fmt.Errorf("%s: %s %s: %w", f, gvk, obj.GetName(), err)
			}
			var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
			if m.Scope.Name() == meta.RESTScopeNameNamespace {
				obj.SetNamespace(namespace)
				ri = dyn.Resource(m.Resource).Namespace(namespace)
			}
			created, err := ri.Create(ctx, obj, metav1.CreateOptions{FieldValidation: "Strict"})
			if err != nil {
				return out, fmt.Errorf("%s: %s %s: %w", f, gvk.Kind, obj.GetName(), err)
			}
			out = append(out, created)
		}
	}
	return out, nil
}

// readManifests decodes the YAML documents of file.
func readManifests(file string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}
