// Command kubeagora-controlplane is one binary holding a whole Kubernetes control plane:
//
//	kubeagora-controlplane etcd                    [flags]   embedded etcd (go.etcd.io/etcd/server/v3/embed)
//	kubeagora-controlplane kube-apiserver          [flags]   k8s.io/kubernetes/cmd/kube-apiserver
//	kubeagora-controlplane kube-scheduler          [flags]   k8s.io/kubernetes/cmd/kube-scheduler
//	kubeagora-controlplane kube-controller-manager [flags]   k8s.io/kubernetes/cmd/kube-controller-manager
//	kubeagora-controlplane kubectl                 [args]    k8s.io/kubectl of the same release
//	kubeagora-controlplane version
//
// Each subcommand takes exactly the flags of the upstream component. Like busybox, the binary
// also dispatches on its own name, so a symlink called "kubectl" behaves as kubectl.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/version"
)

// component builds and runs one subcommand; it returns the process exit code.
type component func() int

var components = map[string]component{
	"etcd":                    runEtcd,
	"kube-apiserver":          runAPIServer,
	"kube-scheduler":          runScheduler,
	"kube-controller-manager": runControllerManager,
	"kubectl":                 runKubectl,
	"version":                 runVersion,
}

func names() []string {
	out := make([]string, 0, len(components))
	for name := range components {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: kubeagora-controlplane <%s> [flags]\n", strings.Join(names(), "|"))
}

// runCobra runs an upstream component command the way its own main() does.
func runCobra(cmd *cobra.Command) int {
	return cli.Run(cmd)
}

func runVersion() int {
	fmt.Println(version.Get().GitVersion)
	return 0
}

func main() {
	self := filepath.Base(os.Args[0])
	if run, ok := components[self]; ok {
		os.Args = append([]string{self}, os.Args[1:]...)
		os.Exit(run())
	}
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	sub := os.Args[1]
	if sub == "-h" || sub == "--help" || sub == "help" {
		usage()
		os.Exit(0)
	}
	run, ok := components[sub]
	if !ok {
		fmt.Fprintf(os.Stderr, "kubeagora-controlplane: unknown component %q\n", sub)
		usage()
		os.Exit(2)
	}
	// Drop the subcommand so that each upstream command parses os.Args[1:] as its own flags.
	os.Args = append([]string{sub}, os.Args[2:]...)
	os.Exit(run())
}
