//go:build tools

// Package tools keeps `go mod tidy` from pruning what the provider's main package needs:
// that package is assembled from the module cache by tools/setup-toolchain.sh.
package tools

import (
	_ "github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	_ "github.com/pulumi/pulumi/pkg/v3/codegen/schema"
)
